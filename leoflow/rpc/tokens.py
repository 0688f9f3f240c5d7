"""Agent tokens: one short-lived JWT per task try, the only credential a worker holds.

A token is an HS256 JWT signed with ``LEOFLOW_AUTH_JWT_SECRET`` whose audience
(``leoflow-agent``) differs from user tokens' (``leoflow-user``), so neither is accepted in place
of the other. Its claims name the try: ``tenant``, ``dag_id``, ``run_id``, ``task_id``,
``map_index``, ``try_number`` and, when the dispatcher knows it, ``ti`` (the task instance's
UUID). It expires ``execution_timeout + margin`` after it is minted (a default lifetime when
the task has no timeout), so a leaked token is useless soon after its try could have ended.

Checking a token has two outcomes the agent service maps to gRPC codes: expired, forged or
malformed -> ``Unauthorized`` (UNAUTHENTICATED); a valid token presented for a try that is no
longer the task instance's current one -> ``Forbidden`` (PERMISSION_DENIED, decided by the
servicer, which sees the store).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jwt

from leoflow.errors import LeoflowError, Unauthorized
from leoflow.executors.base import TaskKey

ISSUER = "leoflow"
AGENT_AUDIENCE = "leoflow-agent"
DEFAULT_MARGIN_SECONDS = 600.0
"""Added to the task's timeout: queueing, image pull, start-up and the final reports."""
DEFAULT_TTL_SECONDS = 24 * 3600.0
"""The lifetime of a token for a task without execution_timeout."""

_REQUIRED = ["exp", "iat", "tenant", "dag_id", "run_id", "task_id", "map_index", "try_number"]


@dataclass(frozen=True)
class AgentClaims:
    """The try an agent token is valid for."""

    tenant: str
    key: TaskKey
    ti_id: UUID | None
    expires_at: float


class AgentTokenConfigError(LeoflowError):
    """Agent tokens cannot be minted or checked as configured."""


class AgentTokenIssuer:
    """Mints and verifies agent tokens with the control plane's JWT secret."""

    def __init__(
        self,
        secret: str | None,
        *,
        margin_seconds: float = DEFAULT_MARGIN_SECONDS,
        default_ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        if not secret:
            raise AgentTokenConfigError(
                "no JWT signing secret for agent tokens",
                field="LEOFLOW_AUTH_JWT_SECRET",
                hint="set LEOFLOW_AUTH_JWT_SECRET to a long random string "
                "(e.g. `openssl rand -hex 32`)",
            )
        self._secret = secret
        self.margin_seconds = margin_seconds
        self.default_ttl_seconds = default_ttl_seconds

    def mint(
        self,
        key: TaskKey,
        *,
        tenant: str = "default",
        ti_id: UUID | None = None,
        timeout_seconds: float | None = None,
        now: float | None = None,
    ) -> str:
        """A token for exactly this try, expiring after its timeout plus the margin."""
        issued = time.time() if now is None else now
        ttl = (timeout_seconds + self.margin_seconds) if timeout_seconds else None
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AGENT_AUDIENCE,
            "iat": int(issued),
            "exp": int(issued + (ttl or self.default_ttl_seconds)),
            "tenant": tenant,
            "dag_id": key.dag_id,
            "run_id": key.run_id,
            "task_id": key.task_id,
            "map_index": key.map_index,
            "try_number": key.try_number,
        }
        if ti_id is not None:
            claims["ti"] = str(ti_id)
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str, *, now: float | None = None) -> AgentClaims:
        """The try a token names; ``Unauthorized`` when expired, forged or malformed."""
        options: dict[str, Any] = {"require": _REQUIRED}
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=AGENT_AUDIENCE,
                issuer=ISSUER,
                options=options,
                leeway=0,
            )
            if now is not None and now >= float(claims["exp"]):
                raise jwt.ExpiredSignatureError("Signature has expired")
            key = TaskKey(
                dag_id=str(claims["dag_id"]),
                run_id=str(claims["run_id"]),
                task_id=str(claims["task_id"]),
                map_index=int(claims["map_index"]),
                try_number=int(claims["try_number"]),
            )
            ti = claims.get("ti")
            return AgentClaims(
                tenant=str(claims["tenant"]),
                key=key,
                ti_id=UUID(str(ti)) if ti else None,
                expires_at=float(claims["exp"]),
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized(
                "the agent token has expired",
                hint="agent tokens live for the task's execution_timeout plus a margin",
            ) from exc
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
            raise Unauthorized(f"invalid agent token: {exc}") from exc


def bearer_token(metadata: Any) -> str | None:
    """The token of an ``authorization: Bearer <token>`` entry of gRPC metadata."""
    for name, value in metadata or ():
        if name.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
