"""Authentication and authorisation: JWTs, roles with Airflow's meanings, tenants, login limits.

A token is an HS256 JWT signed with ``LEOFLOW_AUTH_JWT_SECRET``. Its claims name the user
(``sub``), the tenant and the role; every request is scoped to that tenant. Roles are ranked
(viewer < user < op < admin) and each ``Permission`` names the lowest role that holds it:

* viewer reads everything of its tenant;
* user also triggers, clears, pauses, marks states and deletes runs;
* op also manages variables, connections, pools and registers or deletes DAGs;
* admin also manages users.

A route declares the permission it needs on its ``ApiRoute`` (``leoflow/server/routing.py``);
``authenticate`` and ``authorize`` below are what that guard calls.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

import jwt
from starlette.requests import Request

from leoflow.errors import Forbidden, LeoflowError, Unauthorized
from leoflow.store.api import DEFAULT_TENANT, Role

ISSUER = "leoflow"
AUDIENCE = "leoflow-user"
COOKIE_NAME = "_token"


class Permission(StrEnum):
    """What a route needs; the value says which role holds it first."""

    READ = "read"
    """Any authenticated user of the tenant."""
    EXECUTE = "execute"
    """Trigger, clear, pause, mark states, patch notes, delete runs (Airflow's User)."""
    MANAGE = "manage"
    """Variables, connections, pools, DAG registration and deletion (Airflow's Op)."""
    ADMIN = "admin"
    """Users (Airflow's Admin)."""


_LOWEST_ROLE = {
    Permission.READ: Role.VIEWER,
    Permission.EXECUTE: Role.USER,
    Permission.MANAGE: Role.OP,
    Permission.ADMIN: Role.ADMIN,
}


def role_has(role: Role, permission: Permission) -> bool:
    """True when ``role`` holds ``permission``."""
    return role.allows(_LOWEST_ROLE[permission])


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    username: str
    tenant: str
    role: Role


class AuthConfigError(LeoflowError):
    """The server cannot authenticate anyone as configured."""


@dataclass
class TokenIssuer:
    """Mints and checks user JWTs with one shared secret."""

    secret: str
    ttl_seconds: int

    def __post_init__(self) -> None:
        if not self.secret:
            raise AuthConfigError(
                "no JWT signing secret",
                field="LEOFLOW_AUTH_JWT_SECRET",
                hint="set LEOFLOW_AUTH_JWT_SECRET to a long random string (e.g. `openssl rand -hex 32`)",
            )

    def mint(self, principal: Principal, *, now: float | None = None) -> str:
        """A signed token for ``principal`` expiring after the TTL."""
        issued = int(time.time() if now is None else now)
        claims = {
            "sub": principal.username,
            "tenant": principal.tenant,
            "role": principal.role.value,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": issued + self.ttl_seconds,
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        """The principal a token names; Unauthorized when expired, forged or malformed."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "sub", "iat"]},
            )
            return Principal(
                username=str(claims["sub"]),
                tenant=str(claims.get("tenant") or DEFAULT_TENANT),
                role=Role(claims["role"]),
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("Token has expired") from exc
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            raise Unauthorized("Invalid JWT token") from exc


@dataclass
class LoginLimiter:
    """Fixed one-minute window of failed logins per client IP (per process)."""

    per_minute: int
    _failures: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def _recent(self, client: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(client, []) if now - t < 60]
        self._failures[client] = kept
        return kept

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds the client must wait, or 0 when it may try now."""
        now = time.monotonic() if now is None else now
        recent = self._recent(client, now)
        if len(recent) < max(self.per_minute, 1):
            return 0
        return max(1, int(60 - (now - recent[0])) + 1)

    def failed(self, client: str, now: float | None = None) -> None:
        """Count one failed attempt."""
        now = time.monotonic() if now is None else now
        self._recent(client, now).append(now)
        if len(self._failures) > 10_000:  # bound memory under a spray of addresses
            self._failures.clear()


@dataclass
class Auth:
    """The auth state of one app: token issuer and login limiter (kept on ``app.state.auth``)."""

    issuer: TokenIssuer
    limiter: LoginLimiter


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.cookies.get(COOKIE_NAME) or None


def authenticate(request: Request) -> Principal:
    """The caller from the Bearer header or the ``_token`` cookie; Unauthorized otherwise."""
    token = _bearer(request)
    if token is None:
        raise Unauthorized("Not authenticated")
    auth: Auth = request.app.state.auth
    return auth.issuer.verify(token)


def authorize(principal: Principal, permission: Permission) -> None:
    """Forbidden unless the principal's role holds ``permission``."""
    if not role_has(principal.role, permission):
        needed = _LOWEST_ROLE[permission]
        raise Forbidden(
            f"Forbidden: the {principal.role.value!r} role cannot {permission.value}; "
            f"this needs the {needed.value!r} role or higher"
        )


def client_ip(request: Request) -> str:
    """The peer address (proxies are not trusted for this)."""
    return request.client.host if request.client else "unknown"
