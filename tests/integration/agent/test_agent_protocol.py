"""The agent service call by call over loopback gRPC: identity, inputs, XCom, logs, secrets."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import jwt
import pytest

from leoflow.executors.base import TaskKey
from leoflow.logs import log_path
from leoflow.rpc import agent_pb2 as pb
from leoflow.rpc.tokens import AgentTokenIssuer
from leoflow.server.auth import Principal, TokenIssuer
from leoflow.store.api import Connection, Role, TIState, Variable

GRAPH = """
from airflow.sdk import DAG, task


@task
def a() -> int:
    return 1


@task
def b() -> int:
    return 2


@task
def c(x: int) -> int:
    return x


@task
def d(xs: list) -> list:
    return xs


with DAG("agent_graph", schedule=None):
    first, second = a(), b()
    third = c(first)
    second >> third
    d([first, second])
"""

SCHEMA = """
tasks:
  c:
    output_schema: {type: integer}
"""


async def _queue(store, task_id: str, *, run_id: str = "r1") -> object:
    """Move one TI of agent_graph to queued (try 1), as the scheduler's dispatch does."""
    ti = await store.get_ti("default", "agent_graph", run_id, task_id)
    assert await store.transition_ti(ti.id, TIState.SCHEDULED, expected=[None])
    assert await store.transition_ti(ti.id, TIState.QUEUED, expected=[TIState.SCHEDULED])
    return await store.get_ti_by_id(ti.id)


@pytest.fixture
async def graph(store, redis_store, projects):
    await projects.register("agent_graph", GRAPH, SCHEMA)
    run = await store.create_run("default", "agent_graph", run_id="r1")
    async with store.transaction() as tx:
        await tx.create_task_instances(run.id)
    await redis_store.set_xcom("default", "agent_graph", "r1", "a", "return_value", 1)
    await redis_store.set_xcom("default", "agent_graph", "r1", "b", "return_value", 2)
    await redis_store.set_xcom("default", "agent_graph", "r1", "b", "secret_key", "nope")
    return run


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _token(service, task_id: str, try_number: int = 1, **kwargs) -> str:
    key = TaskKey("agent_graph", "r1", task_id, -1, try_number)
    return service.issuer.mint(key, **kwargs)


async def _code(awaitable) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable
    return info.value.code()


async def test_inputs_are_only_the_declared_upstream_outputs(store, graph, agent_service) -> None:
    await _queue(store, "c")
    await _queue(store, "d")
    channel, stub = agent_service.stub()
    async with channel:
        inputs = await stub.GetInputs(
            pb.GetInputsRequest(), metadata=_md(_token(agent_service, "c"))
        )
        # b is upstream of c (>>) but not an argument: its outputs are not c's to read.
        assert [(v.task_id, v.key, json.loads(v.value_json)) for v in inputs.values] == [
            ("a", "return_value", 1)
        ]
        fan_in = await stub.GetInputs(
            pb.GetInputsRequest(), metadata=_md(_token(agent_service, "d"))
        )
        assert sorted((v.task_id, json.loads(v.value_json)) for v in fan_in.values) == [
            ("a", 1),
            ("b", 2),
        ]
        task = await stub.GetTask(pb.GetTaskRequest(), metadata=_md(_token(agent_service, "c")))
        assert (task.dag_id, task.task_id, task.try_number) == ("agent_graph", "c", 1)
        assert json.loads(task.task_spec_json)["xcom_inputs"] == {
            "x": {"task_id": "a", "key": "return_value"}
        }
        assert task.dag_file.endswith("agent_graph/dag.py")


async def test_token_for_another_try_or_task_is_refused(store, graph, agent_service) -> None:
    await _queue(store, "c")
    channel, stub = agent_service.stub()
    req = pb.GetTaskRequest()
    async with channel:
        # A valid token of another try (an old agent after a retry, or a future one).
        code = await _code(stub.GetTask(req, metadata=_md(_token(agent_service, "c", 2))))
        assert code is grpc.StatusCode.PERMISSION_DENIED
        # A valid token naming the task instance id of another task.
        other = await store.get_ti("default", "agent_graph", "r1", "a")
        token = _token(agent_service, "c", ti_id=other.id)
        assert await _code(stub.GetTask(req, metadata=_md(token))) is (
            grpc.StatusCode.PERMISSION_DENIED
        )
        # Heartbeats of another try are refused too (the agent then kills its task).
        hb = stub.Heartbeat(pb.HeartbeatRequest(), metadata=_md(_token(agent_service, "c", 2)))
        assert await _code(hb) is grpc.StatusCode.PERMISSION_DENIED
        # The right token works.
        ok = await stub.GetTask(req, metadata=_md(_token(agent_service, "c")))
        assert ok.task_id == "c"


async def test_forged_expired_missing_and_user_tokens_are_unauthenticated(
    store, graph, agent_service, settings
) -> None:
    await _queue(store, "c")
    key = TaskKey("agent_graph", "r1", "c", -1, 1)
    good = agent_service.issuer.mint(key)
    header, _payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    claims["task_id"] = "a"
    tampered_payload = jwt.encode(claims, "y" * 32, algorithm="HS256").split(".")[1]
    tokens = {
        "forged": AgentTokenIssuer("another-secret-entirely-" + "z" * 32).mint(key),
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "expired": agent_service.issuer.mint(key, timeout_seconds=1, now=time.time() - 4000),
        # A user's API token signed with the same secret is not an agent token.
        "user": TokenIssuer(settings.jwt_secret, 3600).mint(
            Principal("admin", "default", Role.ADMIN)
        ),
        "garbage": "not-a-jwt",
    }
    channel, stub = agent_service.stub()
    async with channel:
        for name, token in tokens.items():
            code = await _code(stub.GetTask(pb.GetTaskRequest(), metadata=_md(token)))
            assert code is grpc.StatusCode.UNAUTHENTICATED, name
        assert await _code(stub.GetTask(pb.GetTaskRequest())) is grpc.StatusCode.UNAUTHENTICATED
        assert (await stub.GetTask(pb.GetTaskRequest(), metadata=_md(good))).task_id == "c"


async def test_push_xcom_checks_size_json_and_output_schema(
    store, redis_store, graph, agent_service
) -> None:
    await _queue(store, "c")
    md = _md(_token(agent_service, "c"))
    channel, stub = agent_service.stub()
    async with channel:
        big = json.dumps("x" * (256 * 1024)).encode()
        answer = await stub.PushXCom(pb.PushXComRequest(key="big", value_json=big), metadata=md)
        assert (answer.accepted, answer.rejection_reason) == (False, "payload_too_large")
        answer = await stub.PushXCom(pb.PushXComRequest(value_json=b"{not json"), metadata=md)
        assert (answer.accepted, answer.rejection_reason) == (False, "invalid_json")
        answer = await stub.PushXCom(pb.PushXComRequest(value_json=b'"text"'), metadata=md)
        assert not answer.accepted
        assert answer.rejection_reason.startswith("schema_mismatch: ")
        assert "integer" in answer.rejection_reason
        answer = await stub.PushXCom(pb.PushXComRequest(value_json=b"42"), metadata=md)
        assert answer.accepted
        answer = await stub.PushXCom(
            pb.PushXComRequest(key="extra", value_json=b"[1]"), metadata=md
        )
        assert answer.accepted
    assert await redis_store.get_xcom("default", "agent_graph", "r1", "c", "return_value") == 42
    entries = await store.list_xcoms("default", "agent_graph", "r1", "c")
    assert sorted(e.key for e in entries.items) == ["extra", "return_value"]


async def test_logs_are_stored_once_acknowledged_and_published(
    store, redis_store, graph, agent_service
) -> None:
    ti = await _queue(store, "c")
    md = _md(_token(agent_service, "c"))
    live = await redis_store.subscribe_logs("default", "agent_graph", "r1", "c", 1)

    def line(n: int) -> pb.LogLine:
        return pb.LogLine(sequence=n, level="info", stream="stdout", message=f"line {n}")

    async def send(numbers):
        for n in numbers:
            yield line(n)

    channel, stub = agent_service.stub()
    async with channel, live:
        acks = [a.sequence async for a in stub.StreamLogs(send([1, 2, 3]), metadata=md)]
        assert acks and acks[-1] == 3 and acks == sorted(acks)
        # A reconnecting agent resends what it was not sure about: stored once.
        acks = [a.sequence async for a in stub.StreamLogs(send([2, 3, 4]), metadata=md)]
        assert acks[-1] == 4
        received = []
        async for message in live:
            received.append(json.loads(message)["event"])
            if len(received) == 4:
                break
    path = log_path(
        agent_service.logs_dir,
        dag_id="agent_graph",
        run_id="r1",
        task_id="c",
        map_index=-1,
        try_number=ti.try_number,
    )
    stored = [json.loads(x) for x in path.read_text().splitlines()]
    assert [e["event"] for e in stored] == ["line 1", "line 2", "line 3", "line 4"]
    assert received == ["line 1", "line 2", "line 3", "line 4"]
    assert stored[0]["logger"] == "task.stdout"


async def test_report_state_heartbeat_and_termination(store, graph, agent_service) -> None:
    ti = await _queue(store, "c")
    md = _md(_token(agent_service, "c"))
    channel, stub = agent_service.stub()
    async with channel:
        await stub.Register(pb.RegisterRequest(hostname="pod-c", pid=4242), metadata=md)
        beat = await stub.Heartbeat(pb.HeartbeatRequest(), metadata=md)
        assert not beat.should_terminate  # queued: RUNNING not reported yet
        running = await stub.ReportState(pb.ReportStateRequest(state=pb.RUNNING), metadata=md)
        assert running.acknowledged
        again = await stub.ReportState(pb.ReportStateRequest(state=pb.RUNNING), metadata=md)
        assert again.acknowledged  # a retried call is idempotent
        row = await store.get_ti_by_id(ti.id)
        assert (row.state, row.hostname, row.pid, row.executor) == (
            TIState.RUNNING,
            "pod-c",
            4242,
            "agent",
        )
        before = row.last_heartbeat_at
        beat = await stub.Heartbeat(pb.HeartbeatRequest(), metadata=md)
        assert not beat.should_terminate
        assert (await store.get_ti_by_id(ti.id)).last_heartbeat_at > before
        # A user marks the task failed: the next heartbeat asks the agent to stop.
        await store.patch_ti("default", "agent_graph", "r1", "c", state=TIState.FAILED)
        beat = await stub.Heartbeat(pb.HeartbeatRequest(), metadata=md)
        assert beat.should_terminate and "failed" in beat.reason
        # Its late report changes nothing.
        late = await stub.ReportState(pb.ReportStateRequest(state=pb.SUCCESS), metadata=md)
        assert not late.acknowledged
        assert (await store.get_ti_by_id(ti.id)).state is TIState.FAILED


async def test_terminal_report_records_retry_and_notifies(store, graph, agent_service) -> None:
    ti = await _queue(store, "d")
    md = _md(_token(agent_service, "d"))
    listener = await store.listen()
    try:
        listener.drain()
        channel, stub = agent_service.stub()
        async with channel:
            await stub.ReportState(pb.ReportStateRequest(state=pb.RUNNING), metadata=md)
            done = await stub.ReportState(
                pb.ReportStateRequest(state=pb.FAILED, error_message="boom", retryable=False),
                metadata=md,
            )
            assert done.acknowledged
        # retryable=False (AirflowFailException) fails without retrying.
        assert (await store.get_ti_by_id(ti.id)).state is TIState.FAILED
        payload = await asyncio.wait_for(listener.get(), 10)
        assert payload == f"ti:{ti.dag_run_id}"
    finally:
        await listener.close()


async def test_secrets_need_tls_unless_allowed(store, graph, agent_service) -> None:
    await store.put_variable("default", Variable(key="region", value="eu"))
    await store.put_connection(
        "default",
        Connection(conn_id="warehouse", conn_type="postgres", host="db", login="u", password="p"),
    )
    await _queue(store, "c")
    md = _md(_token(agent_service, "c"))
    channel, stub = agent_service.stub()
    async with channel:
        secrets = await stub.GetSecrets(pb.GetSecretsRequest(), metadata=md)
        assert dict(secrets.variables) == {"region": "eu"}
        assert secrets.connection_uris["warehouse"] == "postgres://u:p@db"
        agent_service.servicer.config.allow_insecure_secrets = False
        code = await _code(stub.GetSecrets(pb.GetSecretsRequest(), metadata=md))
        assert code is grpc.StatusCode.FAILED_PRECONDITION
