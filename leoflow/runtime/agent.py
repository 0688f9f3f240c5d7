"""`leoflow agent`: the worker entrypoint. Runs exactly one task try, then exits.

It is what a task pod runs (and what the ``agent`` executor runs as a local process). Its only
credential is the try's agent token; everything else comes from the control plane over gRPC
(``leoflow/rpc/agent.proto``)::

    Register -> GetTask -> GetInputs -> GetSecrets -> write job.json -> ReportState(RUNNING)
    -> run ``<python> -m leoflow.runtime.runner job.json`` in its own process group,
       streaming its stdout/stderr through StreamLogs and heartbeating meanwhile
    -> PushXCom (return_value, then extra keys) -> ReportState(terminal) -> exit

Environment: ``LEOFLOW_AGENT_ADDRESS`` (host:port), ``LEOFLOW_AGENT_TOKEN``, optional
``LEOFLOW_AGENT_TLS_CA`` (a PEM file: the channel is TLS when it is set), the DAG's interpreter
``LEOFLOW_PYTHON`` (else the image's ``LEOFLOW_DAG_PYTHON``, else this interpreter) and the DAG
file ``LEOFLOW_DAG_FILE`` (set by DAG images; else the path the control plane sends).

Exit codes: 0 the task succeeded or was skipped, 1 it failed (or its report was refused),
2 the agent could not talk to the control plane. It fails closed: when heartbeats cannot reach
the control plane for ``LEOFLOW_AGENT_LOST_AFTER_SECONDS`` (default 30), or the control plane
asks it to stop, it kills the task's process group and exits non-zero.

The runner stays standard-library only; only this module needs grpcio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from leoflow import __version__
from leoflow.rpc import agent_pb2 as pb
from leoflow.rpc import agent_pb2_grpc as pb_grpc
from leoflow.runtime.agent_logs import FATAL_CODES, LogShipper

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_AGENT_ERROR = 2
_TERMINAL_STATE = {"success": pb.SUCCESS, "failed": pb.FAILED, "skipped": pb.SKIPPED}
_RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_LINE_LIMIT = 1024 * 1024


class AgentError(Exception):
    """The agent cannot do its job (bad configuration, refused or unreachable control plane)."""


@dataclass(frozen=True)
class AgentConfig:
    """Where the control plane is, and how patient to be with it."""

    address: str
    token: str
    tls_ca: Path | None = None
    python: str = sys.executable
    dag_file: str | None = None
    connect_timeout: float = 30.0
    rpc_timeout: float = 30.0
    lost_after: float = 30.0
    kill_grace: float = 5.0
    log_flush_timeout: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AgentConfig:
        """Read ``LEOFLOW_AGENT_*`` (AgentError naming the variable that is missing)."""
        env = os.environ if env is None else env
        address, token = env.get("LEOFLOW_AGENT_ADDRESS"), env.get("LEOFLOW_AGENT_TOKEN")
        for name, value in (("LEOFLOW_AGENT_ADDRESS", address), ("LEOFLOW_AGENT_TOKEN", token)):
            if not value:
                raise AgentError(
                    f"{name} is not set: `leoflow agent` runs inside a task pod (or the agent "
                    "executor), which sets it"
                )
        ca = env.get("LEOFLOW_AGENT_TLS_CA")
        return cls(
            address=str(address),
            token=str(token),
            tls_ca=Path(ca) if ca else None,
            python=env.get("LEOFLOW_PYTHON") or env.get("LEOFLOW_DAG_PYTHON") or sys.executable,
            dag_file=env.get("LEOFLOW_DAG_FILE") or None,
            connect_timeout=float(env.get("LEOFLOW_AGENT_CONNECT_TIMEOUT_SECONDS") or 30),
            lost_after=float(env.get("LEOFLOW_AGENT_LOST_AFTER_SECONDS") or 30),
        )


def open_channel(address: str, tls_ca: Path | None) -> grpc.aio.Channel:
    """A plaintext channel, or TLS verified against ``tls_ca``."""
    options = [
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
    ]
    if tls_ca is None:
        return grpc.aio.insecure_channel(address, options=options)
    try:
        root = tls_ca.read_bytes()
    except OSError as exc:
        raise AgentError(f"cannot read LEOFLOW_AGENT_TLS_CA {tls_ca}: {exc}") from exc
    return grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(root), options=options)


@dataclass
class _Outcome:
    state: str
    error: str | None = None
    retryable: bool = True
    exit_code: int = 0
    result: dict[str, Any] = field(default_factory=dict)


class Agent:
    """One task try, from Register to the terminal report."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._metadata = (("authorization", f"Bearer {config.token}"),)
        self._stop_reason: str | None = None
        self._lost = False
        self._proc: asyncio.subprocess.Process | None = None
        self._logs: LogShipper | None = None
        self._stopping: asyncio.Future[None] | None = None

    async def run(self) -> int:
        """Run the try; returns the process exit code."""
        channel = open_channel(self.config.address, self.config.tls_ca)
        try:
            async with channel:
                return await self._run(pb_grpc.AgentStub(channel))
        except AgentError as exc:
            _say(f"leoflow agent: {exc}")
            return EXIT_AGENT_ERROR
        finally:
            await self._kill()

    async def _run(self, stub: pb_grpc.AgentStub) -> int:
        reg = await self._rpc(
            stub.Register,
            pb.RegisterRequest(
                agent_version=__version__, hostname=socket.gethostname(), pid=os.getpid()
            ),
            timeout=self.config.connect_timeout,
            wait_for_ready=True,
        )
        task = await self._rpc(stub.GetTask, pb.GetTaskRequest())
        inputs = await self._rpc(stub.GetInputs, pb.GetInputsRequest())
        secrets, secrets_note = await self._secrets(stub)
        with tempfile.TemporaryDirectory(prefix="leoflow-agent-") as tmp:
            workdir = Path(tmp)
            job_file = _write_job(workdir, task, inputs, self.config.dag_file)
            running = await self._rpc(stub.ReportState, pb.ReportStateRequest(state=pb.RUNNING))
            if not running.acknowledged:
                _say("leoflow agent: the control plane refused RUNNING: this try is over")
                return EXIT_TASK_FAILED
            self._logs = LogShipper(stub, self._metadata)
            self._logs.start()
            if secrets_note:
                self._logs.emit("agent", "warning", secrets_note)
            env = runner_env(os.environ, task, secrets)
            outcome = await self._execute(stub, task, job_file, env, workdir, reg)
        return await self._finish(stub, outcome)

    async def _secrets(self, stub: pb_grpc.AgentStub) -> tuple[pb.Secrets, str | None]:
        try:
            return await self._rpc(stub.GetSecrets, pb.GetSecretsRequest()), None
        except AgentError as exc:
            if "FAILED_PRECONDITION" not in str(exc):
                raise
            # Plaintext channel: the control plane keeps secrets to itself; the task runs without.
            return pb.Secrets(), f"variables and connections not delivered: {exc}"

    async def _execute(
        self,
        stub: pb_grpc.AgentStub,
        task: pb.TaskAssignment,
        job_file: Path,
        env: dict[str, str],
        workdir: Path,
        reg: pb.RegisterResponse,
    ) -> _Outcome:
        assert self._logs is not None
        if self._stop_reason:  # SIGTERM arrived before the task started: do not start it
            return _Outcome("failed", self._stop_reason, exit_code=EXIT_TASK_FAILED)
        self._proc = await asyncio.create_subprocess_exec(
            self.config.python,
            "-m",
            "leoflow.runtime.runner",
            str(job_file),
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            process_group=0,
            limit=_LINE_LIMIT,
        )
        self._logs.emit("agent", "info", f"task started (runner pid {self._proc.pid})")
        if self._stop_reason:
            await self._kill()
        pumps = asyncio.gather(
            self._pump(self._proc.stdout, "stdout", "info"),
            self._pump(self._proc.stderr, "stderr", "error"),
        )
        interval = reg.heartbeat_interval_seconds or 5.0
        beat = asyncio.create_task(self._heartbeat(stub, interval), name="agent-heartbeat")
        timeout = task.execution_timeout_seconds or None
        timed_out = False
        try:
            await asyncio.wait_for(self._proc.wait(), timeout=timeout)
        except TimeoutError:
            timed_out = True
            await self._kill()
        finally:
            beat.cancel()
            with contextlib.suppress(BaseException):
                await beat
        # Nothing the task started may outlive it; this also closes pipes a stray child holds.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        await pumps
        code = self._proc.returncode if self._proc.returncode is not None else -1
        if timed_out:
            return _Outcome(
                "failed", f"execution_timeout of {timeout:g} s exceeded; the task was killed"
            )
        if self._stop_reason:
            return _Outcome("failed", self._stop_reason, exit_code=EXIT_TASK_FAILED)
        return _read_result(workdir / "result.json", code)

    async def _pump(self, stream: asyncio.StreamReader | None, name: str, level: str) -> None:
        assert self._logs is not None
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the limit: ship what was read so far
                raw = await stream.read(_LINE_LIMIT)
            if not raw:
                return
            self._logs.emit(name, level, raw.decode("utf-8", "replace").rstrip("\n"))

    async def _heartbeat(self, stub: pb_grpc.AgentStub, interval: float) -> None:
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while True:
            await asyncio.sleep(interval)
            try:
                answer = await stub.Heartbeat(
                    pb.HeartbeatRequest(), metadata=self._metadata, timeout=interval * 2 + 5
                )
                last_ok = loop.time()
                if answer.should_terminate:
                    await self._stop(f"stopped by the control plane: {answer.reason}")
                    return
            except grpc.aio.AioRpcError as exc:
                if exc.code() in FATAL_CODES:
                    await self._stop(f"heartbeat refused ({exc.code().name}: {exc.details()})")
                    return
                if loop.time() - last_ok > self.config.lost_after:
                    self._lost = True
                    await self._stop(
                        f"lost the control plane for {self.config.lost_after:g} s "
                        f"({exc.code().name}); the task was killed"
                    )
                    return

    async def _stop(self, reason: str) -> None:
        self._stop_reason = reason
        if self._logs is not None:
            self._logs.emit("agent", "error", reason)
        await self._kill()

    async def _kill(self) -> None:
        """SIGTERM the task's process group, SIGKILL it after the grace period."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=self.config.kill_grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    def terminate(self) -> None:
        """SIGTERM to the agent (the pod is being deleted): stop the task, then report."""
        if self._stop_reason is None:
            self._stopping = asyncio.ensure_future(self._stop("the agent was terminated (SIGTERM)"))

    async def _finish(self, stub: pb_grpc.AgentStub, outcome: _Outcome) -> int:
        assert self._logs is not None
        if outcome.state == "success":
            outcome = await self._push_outputs(stub, outcome)
        summary = f"task {outcome.state}" + (f": {outcome.error}" if outcome.error else "")
        self._logs.emit("agent", "error" if outcome.state == "failed" else "info", summary)
        await self._logs.close(self.config.log_flush_timeout)
        if self._lost:
            _say(f"leoflow agent: {outcome.error}")
            return EXIT_AGENT_ERROR
        request = pb.ReportStateRequest(
            state=_TERMINAL_STATE[outcome.state],
            exit_code=outcome.exit_code,
            error_message=outcome.error or "",
            retryable=outcome.retryable,
        )
        acknowledged = await self._report(stub, request)
        if not acknowledged:
            _say("leoflow agent: the control plane did not accept the outcome (try ended)")
            return EXIT_TASK_FAILED
        return EXIT_TASK_FAILED if outcome.state == "failed" else EXIT_OK

    async def _push_outputs(self, stub: pb_grpc.AgentStub, outcome: _Outcome) -> _Outcome:
        result = outcome.result
        values: list[tuple[str, Any]] = []
        if result.get("has_return_value"):
            values.append(("return_value", result.get("return_value")))
        values.extend((result.get("xcom") or {}).items())
        for key, value in values:
            blob = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            answer = await self._rpc(stub.PushXCom, pb.PushXComRequest(key=key, value_json=blob))
            if not answer.accepted:
                return _Outcome(
                    "failed",
                    f"XCom {key!r} refused by the control plane: {answer.rejection_reason}",
                    exit_code=EXIT_TASK_FAILED,
                )
        return outcome

    async def _report(self, stub: pb_grpc.AgentStub, request: pb.ReportStateRequest) -> bool:
        """Report the outcome, retrying transient failures (the service's update is guarded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.lost_after
        uncertain = False
        while True:
            try:
                answer = await stub.ReportState(
                    request, metadata=self._metadata, timeout=self.config.rpc_timeout
                )
                # After a lost answer the first attempt may have been recorded already.
                return bool(answer.acknowledged) or uncertain
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _RETRYABLE_CODES or loop.time() > deadline:
                    _say(f"leoflow agent: ReportState failed: {exc.code().name}: {exc.details()}")
                    return False
                uncertain = uncertain or exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED
                await asyncio.sleep(1.0)

    async def _rpc(
        self, method: Any, request: Any, *, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        try:
            return await method(
                request,
                metadata=self._metadata,
                timeout=timeout or self.config.rpc_timeout,
                **kwargs,
            )
        except grpc.aio.AioRpcError as exc:
            raise AgentError(
                f"{type(request).__name__[:-7] or 'call'} failed at {self.config.address}: "
                f"{exc.code().name}: {exc.details()}"
            ) from None


def runner_env(
    base: Mapping[str, str], task: pb.TaskAssignment, secrets: pb.Secrets
) -> dict[str, str]:
    """The runner's environment: the agent's minus its credentials, plus context and secrets."""
    env = {k: v for k, v in base.items() if not k.startswith("LEOFLOW_AGENT_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    context = json.loads(task.context_json or b"{}")
    env.update(
        {
            "AIRFLOW_CTX_DAG_ID": task.dag_id,
            "AIRFLOW_CTX_TASK_ID": task.task_id,
            "AIRFLOW_CTX_DAG_RUN_ID": task.run_id,
            "AIRFLOW_CTX_TRY_NUMBER": str(task.try_number),
            "AIRFLOW_CTX_MAP_INDEX": str(task.map_index),
        }
    )
    if context.get("logical_date"):
        env["AIRFLOW_CTX_LOGICAL_DATE"] = str(context["logical_date"])
    if context.get("owner"):
        env["AIRFLOW_CTX_DAG_OWNER"] = str(context["owner"])
    for key, value in secrets.variables.items():
        env[f"AIRFLOW_VAR_{key.upper()}"] = value
    for conn_id, uri in secrets.connection_uris.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = uri
    env.update(task.env)
    return env


def _write_job(
    workdir: Path, task: pb.TaskAssignment, inputs: pb.Inputs, dag_file: str | None
) -> Path:
    xcom: dict[str, dict[str, Any]] = {}
    for value in inputs.values:
        xcom.setdefault(value.task_id, {})[value.key] = json.loads(value.value_json)
    document = {
        "dag_file": dag_file or task.dag_file,
        "dag_id": task.dag_id,
        "task_id": task.task_id,
        "run_id": task.run_id,
        "try_number": task.try_number,
        "map_index": task.map_index,
        "task": json.loads(task.task_spec_json),
        "xcom": xcom,
        "context": json.loads(task.context_json or b"{}"),
        "result_path": str(workdir / "result.json"),
    }
    job_file = workdir / "job.json"
    job_file.write_text(json.dumps(document), encoding="utf-8")
    return job_file


def _read_result(path: Path, code: int) -> _Outcome:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return _Outcome(
            "failed",
            f"the runner exited with code {code} without a result (killed, or out of memory?)",
            exit_code=code,
        )
    error = result.get("error")
    message = f"{error['type']}: {error['message']}" if error else None
    return _Outcome(
        result["outcome"],
        message,
        retryable=bool(result.get("retryable", True)),
        exit_code=code,
        result=result,
    )


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _main(config: AgentConfig) -> int:
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, agent.terminate)
    return await agent.run()


def run_agent(env: Mapping[str, str] | None = None) -> int:
    """Entry point: configure from the environment, run one try, return the exit code."""
    try:
        config = AgentConfig.from_env(env)
    except AgentError as exc:
        _say(f"leoflow agent: {exc}")
        return EXIT_AGENT_ERROR
    return asyncio.run(_main(config))
