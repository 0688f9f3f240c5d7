"""Tokens, roles and the login limiter (pure)."""

from __future__ import annotations

import jwt
import pytest

from leoflow.errors import Forbidden, Unauthorized
from leoflow.server.auth import (
    AuthConfigError,
    LoginLimiter,
    Permission,
    Principal,
    TokenIssuer,
    authorize,
    role_has,
)
from leoflow.store.api import Role

ISSUER = TokenIssuer("s" * 32, ttl_seconds=60)
ALICE = Principal(username="alice", tenant="acme", role=Role.OP)


def test_token_round_trip_keeps_user_tenant_and_role() -> None:
    assert ISSUER.verify(ISSUER.mint(ALICE)) == ALICE


def test_expired_token_is_refused_with_its_reason() -> None:
    token = ISSUER.mint(ALICE, now=0)
    with pytest.raises(Unauthorized, match="expired"):
        ISSUER.verify(token)


@pytest.mark.parametrize(
    "token",
    [
        TokenIssuer("another-secret-of-some-length-0123456789", 60).mint(ALICE),
        jwt.encode({"sub": "alice", "role": "admin"}, "s" * 32, algorithm="HS256"),
        "not-a-jwt",
        jwt.encode(
            {
                "sub": "a",
                "role": "admin",
                "iss": "leoflow",
                "aud": "leoflow-user",
                "iat": 0,
                "exp": 2**40,
            },
            "",
            algorithm="none",
        ),
    ],
    ids=["other-secret", "missing-claims", "garbage", "alg-none"],
)
def test_forged_or_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(Unauthorized, match="Invalid JWT token"):
        ISSUER.verify(token)


def test_server_refuses_to_sign_without_a_secret() -> None:
    with pytest.raises(AuthConfigError) as info:
        TokenIssuer("", 60)
    assert info.value.field == "LEOFLOW_AUTH_JWT_SECRET"


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, {Permission.READ}),
        (Role.USER, {Permission.READ, Permission.EXECUTE}),
        (Role.OP, {Permission.READ, Permission.EXECUTE, Permission.MANAGE}),
        (Role.ADMIN, set(Permission)),
    ],
)
def test_roles_hold_airflow_rights(role: Role, allowed: set[Permission]) -> None:
    assert {p for p in Permission if role_has(role, p)} == allowed
    for permission in set(Permission) - allowed:
        with pytest.raises(Forbidden, match=role.value):
            authorize(Principal("u", "default", role), permission)


def test_limiter_blocks_after_the_budget_and_frees_after_a_minute() -> None:
    limiter = LoginLimiter(per_minute=3)
    for t in range(3):
        assert limiter.retry_after("10.0.0.1", now=100.0 + t) == 0
        limiter.failed("10.0.0.1", now=100.0 + t)
    assert limiter.retry_after("10.0.0.1", now=103.0) > 0
    assert limiter.retry_after("10.0.0.2", now=103.0) == 0
    assert limiter.retry_after("10.0.0.1", now=163.0) == 0
