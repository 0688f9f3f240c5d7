"""Agent tokens: one try each, short-lived, never interchangeable with user tokens."""

from __future__ import annotations

import time
from uuid import uuid4

import jwt
import pytest

from leoflow.errors import Unauthorized
from leoflow.executors.agent import with_agent_token
from leoflow.executors.base import TaskJob, TaskKey
from leoflow.rpc.tokens import (
    AGENT_AUDIENCE,
    AgentTokenConfigError,
    AgentTokenIssuer,
    bearer_token,
)
from leoflow.server.auth import Principal, TokenIssuer
from leoflow.spec import TaskSpec
from leoflow.store.api import Role

SECRET = "s" * 40
KEY = TaskKey("etl", "manual__1", "load", 3, 2)


def test_claims_name_the_try_and_round_trip() -> None:
    issuer = AgentTokenIssuer(SECRET)
    ti_id = uuid4()
    claims = issuer.verify(issuer.mint(KEY, tenant="acme", ti_id=ti_id))
    assert (claims.tenant, claims.key, claims.ti_id) == ("acme", KEY, ti_id)


def test_expiry_is_timeout_plus_margin_or_the_default() -> None:
    issuer = AgentTokenIssuer(SECRET, margin_seconds=60, default_ttl_seconds=3600)
    now = 1_800_000_000.0
    timed = jwt.decode(
        issuer.mint(KEY, timeout_seconds=120, now=now),
        options={"verify_signature": False},
    )
    assert timed["exp"] - timed["iat"] == 180
    assert timed["aud"] == AGENT_AUDIENCE
    untimed = jwt.decode(issuer.mint(KEY, now=now), options={"verify_signature": False})
    assert untimed["exp"] - untimed["iat"] == 3600
    with pytest.raises(Unauthorized, match="expired"):
        issuer.verify(issuer.mint(KEY, timeout_seconds=1, now=time.time() - 120))


def test_agent_and_user_tokens_are_not_interchangeable() -> None:
    agent = AgentTokenIssuer(SECRET)
    users = TokenIssuer(SECRET, 3600)
    user_token = users.mint(Principal("admin", "default", Role.ADMIN))
    with pytest.raises(Unauthorized):
        agent.verify(user_token)
    with pytest.raises(Exception) as info:
        users.verify(agent.mint(KEY))
    assert "Unauthorized" in type(info.value).__name__


def test_forged_and_malformed_tokens_are_unauthorized() -> None:
    issuer = AgentTokenIssuer(SECRET)
    with pytest.raises(Unauthorized):
        issuer.verify(AgentTokenIssuer("o" * 40).mint(KEY))
    with pytest.raises(Unauthorized):
        issuer.verify("a.b.c")
    missing = jwt.encode(
        {"aud": AGENT_AUDIENCE, "iss": "leoflow", "exp": time.time() + 60, "iat": time.time()},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(Unauthorized, match="invalid agent token"):
        issuer.verify(missing)


def test_no_secret_is_a_configuration_error() -> None:
    with pytest.raises(AgentTokenConfigError) as info:
        AgentTokenIssuer(None)
    assert info.value.field == "LEOFLOW_AUTH_JWT_SECRET"


def test_bearer_token_from_metadata() -> None:
    assert bearer_token((("x-other", "1"), ("authorization", "Bearer abc"))) == "abc"
    assert bearer_token((("Authorization", b"bearer  xyz "),)) == "xyz"
    assert bearer_token((("authorization", "Basic abc"),)) is None
    assert bearer_token(None) is None


def test_pod_jobs_get_the_token_and_lose_the_secrets() -> None:
    task = TaskSpec(task_id="load", type="empty", operator="EmptyOperator")
    job = TaskJob(
        key=KEY,
        task=task,
        dag_file="/opt/leoflow/dag/dag.py",  # type: ignore[arg-type]
        python="python",
        env={"AIRFLOW_VAR_X": "1", "AIRFLOW_CONN_DB": "postgres://u:p@h", "OTHER": "kept"},
        timeout_seconds=30,
    )
    issuer = AgentTokenIssuer(SECRET)
    env = with_agent_token(job, issuer).env
    assert set(env) == {"OTHER", "LEOFLOW_AGENT_TOKEN"}
    assert issuer.verify(env["LEOFLOW_AGENT_TOKEN"]).key == KEY
