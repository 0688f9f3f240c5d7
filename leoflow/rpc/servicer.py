"""The control plane's side of the agent protocol (``agent.proto``), on ``grpc.aio``.

Every call is authenticated by the try's agent token (``leoflow.rpc.tokens``): no request
carries ids, the token names the try. A call is served only while that try is the task
instance's current one: an expired or forged token is UNAUTHENTICATED, a token for another
try (an old agent after a retry, a token copied from another task) is PERMISSION_DENIED.

What each call does to the control plane's state goes through the same code as the process
executor's reports (``leoflow.scheduler.events.record_task_event``), so a report means the same
thing whichever replica hears it. Terminal reports then wake the leader scheduler through
Postgres ``NOTIFY`` on ``leoflow_scheduler`` (and an in-process callback when the scheduler
runs in this process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from uuid import UUID

import grpc

from leoflow.errors import Forbidden, LeoflowError, NotFound, Unauthorized, Unavailable
from leoflow.executors.base import TaskEvent, TaskKey
from leoflow.logs import log_path
from leoflow.rpc import agent_pb2 as pb
from leoflow.rpc import agent_pb2_grpc as pb_grpc
from leoflow.rpc.tokens import AgentClaims, AgentTokenIssuer, bearer_token
from leoflow.scheduler.events import check_output_schema, record_task_event
from leoflow.scheduler.notify import notify_scheduler
from leoflow.spec import XCOM_MAX_BYTES, DagSpec, TaskSpec
from leoflow.store.api import DagRun, TaskInstance, TIState
from leoflow.store.redis_store import RedisStore
from leoflow.store.store import Store

log = logging.getLogger("leoflow.rpc")

DagFileResolver = Callable[[str, DagSpec], Awaitable[str]]
"""(tenant, spec) -> the path of the DAG file as the worker sees it."""

IMAGE_DAG_DIR = "/opt/leoflow/dag"
"""Where a DAG image holds the project (templates/Dockerfile.tmpl)."""

_LIVE_STATES = (TIState.QUEUED, TIState.RUNNING)
_TERMINAL = {pb.SUCCESS: "success", pb.FAILED: "failed", pb.SKIPPED: "skipped"}
_CACHE_LIMIT = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


async def image_dag_file(_tenant: str, spec: DagSpec) -> str:
    """The default resolver: the DAG file inside the DAG's image."""
    return f"{IMAGE_DAG_DIR}/{spec.source_file}"


@dataclass
class AgentServiceConfig:
    """Knobs of the agent service (``start_agent_server`` builds one from Settings)."""

    logs_dir: Path
    heartbeat_interval_seconds: float = 5.0
    allow_insecure_secrets: bool = False
    """Serve GetSecrets over plaintext (loopback / Lite only)."""
    resolve_dag_file: DagFileResolver = image_dag_file
    on_change: Callable[[], None] | None = None
    """Called after a terminal report is recorded (e.g. ``Scheduler.wake`` in-process)."""
    executor_name: str = "agent"


@dataclass
class _Call:
    """The authenticated try behind one call."""

    claims: AgentClaims
    ti: TaskInstance

    @property
    def key(self) -> TaskKey:
        return self.claims.key

    @property
    def tenant(self) -> str:
        return self.claims.tenant


@dataclass
class _TryState:
    """What the service remembers about a live try between calls (per replica)."""

    hostname: str | None = None
    pid: int | None = None
    log_sequence: int = 0
    log_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class AgentServicer(pb_grpc.AgentServicer):
    """Serves one agent per task try; state changes go through the scheduler's recorder."""

    def __init__(
        self,
        store: Store,
        redis: RedisStore,
        issuer: AgentTokenIssuer,
        config: AgentServiceConfig,
    ) -> None:
        self.store = store
        self.redis = redis
        self.issuer = issuer
        self.config = config
        self._ti_ids: dict[tuple[str, str, str, str, int], UUID] = {}
        self._tries: dict[TaskKey, _TryState] = {}

    # -- identity ------------------------------------------------------------------------

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> _Call:
        token = bearer_token(context.invocation_metadata())
        if token is None:
            await _abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "missing 'authorization: Bearer <agent token>' metadata",
            )
        try:
            claims = self.issuer.verify(token)
            ti = await self._load_ti(claims)
            _check_try(claims, ti)
        except Unauthorized as exc:
            await _abort(context, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except Forbidden as exc:
            await _abort(context, grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except NotFound as exc:
            await _abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
        except LeoflowError as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        return _Call(claims, ti)

    async def _load_ti(self, claims: AgentClaims) -> TaskInstance:
        if claims.ti_id is not None:
            return await self.store.get_ti_by_id(claims.ti_id)
        key = claims.key
        natural = (claims.tenant, key.dag_id, key.run_id, key.task_id, key.map_index)
        cached = self._ti_ids.get(natural)
        if cached is not None:
            with contextlib.suppress(NotFound):
                return await self.store.get_ti_by_id(cached)
        ti = await self.store.get_ti(*natural)
        if len(self._ti_ids) >= _CACHE_LIMIT:
            self._ti_ids.clear()
        self._ti_ids[natural] = ti.id
        return ti

    def _try(self, key: TaskKey) -> _TryState:
        state = self._tries.get(key)
        if state is None:
            if len(self._tries) >= _CACHE_LIMIT:
                self._tries.clear()
            state = self._tries[key] = _TryState()
        return state

    async def _require_live(self, call: _Call, context: grpc.aio.ServicerContext) -> None:
        if call.ti.state not in _LIVE_STATES:
            state = call.ti.state.value if call.ti.state else "none"
            await _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"try {call.key.try_number} of {call.key.task_id!r} is no longer running "
                f"(state {state})",
            )

    async def _task(self, call: _Call) -> tuple[DagRun, DagSpec, TaskSpec]:
        run = await self.store.get_run_by_id(call.ti.dag_run_id)
        spec = await self.store.get_spec(run.dag_version_id)
        return run, spec, spec.task(call.key.task_id)

    # -- the calls -----------------------------------------------------------------------

    async def Register(
        self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterResponse:
        """Remember the worker's host and pid (recorded on RUNNING); say how often to beat."""
        call = await self._authenticate(context)
        state = self._try(call.key)
        state.hostname = request.hostname or None
        state.pid = request.pid or None
        return pb.RegisterResponse(
            server_time=_now().isoformat().replace("+00:00", "Z"),
            heartbeat_interval_seconds=self.config.heartbeat_interval_seconds,
        )

    async def GetTask(
        self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.TaskAssignment:
        """The try's task spec, Airflow context and DAG file, from the run's pinned version."""
        call = await self._authenticate(context)
        await self._require_live(call, context)
        run, spec, task = await self._guard(context, self._task(call))
        dag_file = await self.config.resolve_dag_file(call.tenant, spec)
        return pb.TaskAssignment(
            dag_id=call.key.dag_id,
            run_id=call.key.run_id,
            task_id=call.key.task_id,
            map_index=call.key.map_index,
            try_number=call.key.try_number,
            task_spec_json=_dumps(task.model_dump(mode="json", by_alias=True)),
            context_json=_dumps(task_context(run, spec)),
            dag_file=dag_file,
            execution_timeout_seconds=task.execution_timeout_seconds or 0.0,
            env=dict(task.env),
        )

    async def GetInputs(
        self, request: pb.GetInputsRequest, context: grpc.aio.ServicerContext
    ) -> pb.Inputs:
        """Outputs of the task's declared upstream refs (xcom_inputs and fan-in slots) only."""
        call = await self._authenticate(context)
        await self._require_live(call, context)
        _run, _spec, task = await self._guard(context, self._task(call))
        refs = declared_refs(task)

        async def one(task_id: str, key: str) -> pb.XComValue | None:
            try:
                value = await self.redis.get_xcom(
                    call.tenant, call.key.dag_id, call.key.run_id, task_id, key
                )
            except NotFound:
                return None
            return pb.XComValue(task_id=task_id, key=key, value_json=_dumps(value))

        values = await self._guard(context, asyncio.gather(*(one(*r) for r in refs)))
        return pb.Inputs(values=[v for v in values if v is not None])

    async def GetSecrets(
        self, request: pb.GetSecretsRequest, context: grpc.aio.ServicerContext
    ) -> pb.Secrets:
        """The tenant's variables and connection URIs; refused on plaintext unless allowed."""
        call = await self._authenticate(context)
        await self._require_live(call, context)
        if not self.config.allow_insecure_secrets and not _is_tls(context):
            await _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                "secrets are only served over TLS: configure the agent service with a "
                "certificate (LEOFLOW_AGENT_TLS_CERT/KEY), or allow insecure secrets on loopback",
            )
        from leoflow.scheduler.service import connection_uri

        variables = await self._guard(context, self.store.list_variables(call.tenant, limit=10_000))
        connections = await self._guard(
            context, self.store.list_connections(call.tenant, limit=10_000)
        )
        return pb.Secrets(
            variables={v.key: v.value for v in variables.items},
            connection_uris={c.conn_id: connection_uri(c) for c in connections.items},
        )

    async def PushXCom(
        self, request: pb.PushXComRequest, context: grpc.aio.ServicerContext
    ) -> pb.PushXComResponse:
        """Store one XCom value of the try: size cap, valid JSON, output_schema."""
        call = await self._authenticate(context)
        await self._require_live(call, context)
        key = request.key or "return_value"
        if len(request.value_json) > XCOM_MAX_BYTES:
            return _rejected("payload_too_large")
        try:
            value = json.loads(request.value_json)
        except (ValueError, UnicodeDecodeError):
            return _rejected("invalid_json")
        if key == "return_value":
            _run, _spec, task = await self._guard(context, self._task(call))
            problem = check_output_schema(task, value)
            if problem:
                return _rejected(f"schema_mismatch: {problem}")
        k = call.key
        try:
            size = await self.redis.set_xcom(
                call.tenant, k.dag_id, k.run_id, k.task_id, key, value, map_index=k.map_index
            )
        except LeoflowError as exc:
            if type(exc).__name__ == "XComTooLarge":
                return _rejected("payload_too_large")
            if isinstance(exc, Unavailable):
                await _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
            return _rejected(f"invalid_json: {exc.message}")
        await self._guard(context, self.store.upsert_xcom(call.ti.id, key, size))
        return pb.PushXComResponse(accepted=True)

    async def StreamLogs(
        self, request_iterator: AsyncIterator[pb.LogLine], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.LogAck]:
        """Append each line to the try's log file, publish it live, ack what is stored."""
        call = await self._authenticate(context)
        state = self._try(call.key)
        k = call.key
        path = log_path(
            self.config.logs_dir,
            dag_id=k.dag_id,
            run_id=k.run_id,
            task_id=k.task_id,
            map_index=k.map_index,
            try_number=k.try_number,
            tenant=call.tenant,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = asyncio.Event()
        done = False

        async def consume() -> None:
            nonlocal done
            try:
                with path.open("a", encoding="utf-8") as sink:
                    async for line in request_iterator:
                        await self._store_line(call, state, sink, line)
                        stored.set()
            finally:
                done = True
                stored.set()

        reader = asyncio.create_task(consume())
        acked = 0
        try:
            while True:
                await stored.wait()
                stored.clear()
                if state.log_sequence > acked:
                    acked = state.log_sequence
                    yield pb.LogAck(sequence=acked)
                if done:
                    break
            await reader  # re-raise a failure of the reader
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def _store_line(self, call: _Call, state: _TryState, sink: Any, line: pb.LogLine) -> None:
        async with state.log_lock:
            # A resent line (the agent reconnected before its ack arrived) is stored once.
            if line.sequence <= state.log_sequence:
                return
            record = {
                "timestamp": line.timestamp or _now().isoformat().replace("+00:00", "Z"),
                "level": line.level or "info",
                "event": line.message,
                "logger": f"task.{line.stream or 'stdout'}",
            }
            text = json.dumps(record)
            sink.write(text + "\n")
            sink.flush()
            state.log_sequence = line.sequence
        k = call.key
        with contextlib.suppress(LeoflowError):
            await self.redis.publish_log(
                call.tenant, k.dag_id, k.run_id, k.task_id, k.try_number, text,
                map_index=k.map_index,
            )  # fmt: skip

    async def ReportState(
        self, request: pb.ReportStateRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportStateResponse:
        """RUNNING, then one terminal state, recorded as the process executor's reports are."""
        call = await self._authenticate(context)
        k = call.key
        state = self._try(k)
        now = _now()
        if request.state == pb.RUNNING:
            event = TaskEvent(k, "running", now, hostname=state.hostname, pid=state.pid)
        elif request.state in _TERMINAL:
            event = TaskEvent(
                k,
                _TERMINAL[request.state],  # type: ignore[arg-type]
                now,
                error=request.error_message or None,
                retryable=request.retryable,
            )
        else:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "state must be set")
        _run, _spec, task = await self._guard(context, self._task(call))
        changed = await self._guard(
            context,
            record_task_event(
                self.store,
                self.redis,
                event,
                tenant=call.tenant,
                ti_id=call.ti.id,
                task=task,
                logs_dir=self.config.logs_dir,
                executor_name=self.config.executor_name,
            ),
        )
        if event.state == "running":
            # A second RUNNING of the same try (a retried call) is acknowledged, not refused.
            return pb.ReportStateResponse(acknowledged=changed or call.ti.state is TIState.RUNNING)
        if changed:
            await self._notify(call.ti.dag_run_id)
            self._tries.pop(k, None)
        return pb.ReportStateResponse(acknowledged=changed)

    async def _notify(self, run_pk: int) -> None:
        # The store's trigger notifies on the state change too; this one also reaches a leader
        # that LISTENs for explicit wake-ups, and costs one statement per finished try.
        with contextlib.suppress(Exception):
            await notify_scheduler(self.store.pool, f"ti:{run_pk}")
        if self.config.on_change is not None:
            self.config.on_change()

    async def Heartbeat(
        self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> pb.HeartbeatResponse:
        """Record liveness; ask the agent to stop when its try is no longer running."""
        call = await self._authenticate(context)
        alive = await self._guard(context, self.store.heartbeat_ti(call.ti.id, call.key.try_number))
        if alive:
            return pb.HeartbeatResponse(should_terminate=False)
        if call.ti.state is TIState.QUEUED:
            # RUNNING was not reported yet: nothing to stop.
            return pb.HeartbeatResponse(should_terminate=False)
        ti = await self._guard(context, self.store.get_ti_by_id(call.ti.id))
        return pb.HeartbeatResponse(should_terminate=True, reason=_stop_reason(ti))

    async def _guard(self, context: grpc.aio.ServicerContext, awaitable: Awaitable[Any]) -> Any:
        """Await a store call, mapping the store's errors to gRPC status codes."""
        try:
            return await awaitable
        except NotFound as exc:
            await _abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
        except KeyError as exc:
            await _abort(context, grpc.StatusCode.NOT_FOUND, f"no task {exc} in the run's DAG")
        except LeoflowError as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))


def declared_refs(task: TaskSpec) -> list[tuple[str, str]]:
    """(task_id, key) of every upstream output the task declared as an argument."""
    refs = {(ref.task_id, ref.key) for ref in task.xcom_inputs.values()}
    for fan_in in task.fan_ins.values():
        refs.update((s.ref.task_id, s.ref.key) for s in fan_in.slots if s.ref is not None)
    return sorted(refs)


def task_context(run: DagRun, spec: DagSpec) -> dict[str, Any]:
    """The Airflow context the runner needs, as the scheduler builds it for the process executor."""
    params = {name: p.default for name, p in spec.params.items()}
    params.update(run.conf or {})
    return {
        "logical_date": _iso(run.logical_date),
        "data_interval_start": _iso(run.data_interval_start),
        "data_interval_end": _iso(run.data_interval_end),
        "run_after": _iso(run.run_after),
        "params": params,
        "conf": run.conf or {},
        "owner": spec.owner,
    }


def _check_try(claims: AgentClaims, ti: TaskInstance) -> None:
    key = claims.key
    same_task = (ti.tenant, ti.dag_id, ti.run_id, ti.task_id, ti.map_index) == (
        claims.tenant,
        key.dag_id,
        key.run_id,
        key.task_id,
        key.map_index,
    )
    if not same_task:
        raise Forbidden("the agent token names another task instance")
    if ti.try_number != key.try_number:
        raise Forbidden(
            f"the agent token is for try {key.try_number} of {key.task_id!r}, but the task "
            f"instance is at try {ti.try_number}: this agent's try is over"
        )


def _stop_reason(ti: TaskInstance) -> str:
    state = ti.state
    if state is None or state is TIState.RESTARTING:
        return "the task instance was cleared"
    if state in (TIState.UP_FOR_RETRY, TIState.FAILED) and ti.end_date is not None:
        return f"the try was ended by the control plane (state {state.value}: timed out or marked)"
    return f"the task instance is {state.value}"


def _is_tls(context: grpc.aio.ServicerContext) -> bool:
    try:
        auth = context.auth_context()
    except Exception:
        return False
    kind = auth.get("transport_security_type") or []
    return any((v.decode() if isinstance(v, bytes) else v) == "ssl" for v in kind)


def _rejected(reason: str) -> pb.PushXComResponse:
    return pb.PushXComResponse(accepted=False, rejection_reason=reason)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _abort(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str
) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort always raises
