"""The agent executor: each try runs ``leoflow agent`` as a local process, exactly as a pod would.

For every ``TaskJob`` it mints the try's agent token and starts
``<python> -m leoflow.cli.main agent`` with the environment a task pod gets (the token, the agent
service's address, the DAG image's ``LEOFLOW_DAG_FILE`` / ``LEOFLOW_DAG_PYTHON`` pointing at the
host's project and venv, Airflow's context variables, the task's env). Variables and
connections are not put in the environment: the agent fetches them with ``GetSecrets``, as in a
pod. The agent then talks to the control plane over gRPC and reports the task's own outcome
and XCom; this executor reports only the infrastructure's view, as the Kubernetes executor
does for pods: an agent that exits without having reported is a failed try.

``report_lost_workers=False`` makes the executor keep quiet when an agent dies, which is what
happens when a whole node vanishes: then only the heartbeat timeout can end the try (used by
the tests of that fault). Either way nothing an agent started outlives it: every process of
its session is killed when it exits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from leoflow.executors.base import EventCallback, Executor, TaskEvent, TaskJob, TaskKey
from leoflow.executors.process import context_env
from leoflow.rpc.tokens import AgentTokenIssuer

_PASS_THROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "TMPDIR")
_SECRET_PREFIXES = ("AIRFLOW_VAR_", "AIRFLOW_CONN_")
_KILL_GRACE_SECONDS = 5.0
_TAIL_LINES = 20


def _now() -> datetime:
    return datetime.now(UTC)


def _leoflow_root() -> str:
    """The directory holding the ``leoflow`` package (the agent and the runner come from it)."""
    return str(Path(__file__).resolve().parent.parent.parent)


@dataclass
class _Agent:
    proc: asyncio.subprocess.Process
    workdir: Path
    watcher: asyncio.Task[None] | None = None
    cancel_reason: str | None = None


class AgentExecutor(Executor):
    """Runs each try as a local ``leoflow agent`` process talking gRPC to the control plane."""

    name = "agent"

    def __init__(
        self,
        *,
        address: str,
        issuer: AgentTokenIssuer,
        work_root: Path | None = None,
        tls_ca: Path | None = None,
        agent_command: Sequence[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        report_lost_workers: bool = True,
    ) -> None:
        """``address`` is the agent service's host:port; ``issuer`` mints one token per try.

        ``agent_command`` defaults to this interpreter running ``leoflow.cli.main agent``;
        ``extra_env`` is added to every agent's environment (e.g. agent timeouts).
        """
        self._address = address
        self._issuer = issuer
        self._work_root = work_root
        self._tls_ca = tls_ca
        self._command = list(agent_command or [sys.executable, "-m", "leoflow.cli.main", "agent"])
        self._extra_env = dict(extra_env or {})
        self._report_lost = report_lost_workers
        self._on_event: EventCallback | None = None
        self._agents: dict[TaskKey, _Agent] = {}

    async def start(self, on_event: EventCallback) -> None:
        """Remember where events go."""
        self._on_event = on_event

    def running(self) -> set[TaskKey]:
        """Keys whose agent process is alive."""
        return set(self._agents)

    def pid(self, key: TaskKey) -> int | None:
        """The agent process of a running try (for tests and diagnostics)."""
        agent = self._agents.get(key)
        return agent.proc.pid if agent else None

    async def submit(self, job: TaskJob) -> None:
        """Mint the try's token and start its agent (no-op when it already runs)."""
        if self._on_event is None:
            raise RuntimeError("AgentExecutor.start() must be called before submit()")
        if job.key in self._agents:
            return
        workdir = Path(tempfile.mkdtemp(prefix="leoflow-agent-try-", dir=self._work_root))
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._command,
                cwd=workdir,
                env=self.environment(job),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            await self._on_event(
                TaskEvent(job.key, "failed", _now(), error=f"could not start the agent: {exc}")
            )
            return
        agent = self._agents[job.key] = _Agent(proc, workdir)
        agent.watcher = asyncio.create_task(self._watch(job.key, agent), name=f"agent-{proc.pid}")

    def environment(self, job: TaskJob) -> dict[str, str]:
        """What a task pod's container gets, with the host's project and venv as the image."""
        token = self._issuer.mint(job.key, tenant=job.tenant, timeout_seconds=job.timeout_seconds)
        env = {k: os.environ[k] for k in _PASS_THROUGH_ENV if k in os.environ}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPATH": _leoflow_root(),
                "LEOFLOW_AGENT_ADDRESS": self._address,
                "LEOFLOW_DAG_FILE": str(job.dag_file),
                "LEOFLOW_DAG_PYTHON": job.python,
            }
        )
        if self._tls_ca is not None:
            env["LEOFLOW_AGENT_TLS_CA"] = str(self._tls_ca)
        env.update(context_env(job))
        env.update(job.task.env)
        env.update({k: v for k, v in job.env.items() if not k.startswith(_SECRET_PREFIXES)})
        env.update(self._extra_env)
        env["LEOFLOW_AGENT_TOKEN"] = token
        return env

    async def cancel(self, key: TaskKey, reason: str) -> None:
        """Kill the try's agent and everything it started; a ``failed`` event follows."""
        agent = self._agents.get(key)
        if agent is None:
            return
        agent.cancel_reason = reason
        await _stop_session(agent.proc)

    async def stop(self) -> None:
        """Kill every agent this executor started and wait for their watchers."""
        for agent in list(self._agents.values()):
            agent.cancel_reason = agent.cancel_reason or "executor stopped"
            await _stop_session(agent.proc)
        watchers = [a.watcher for a in self._agents.values() if a.watcher is not None]
        if watchers:
            await asyncio.gather(*watchers, return_exceptions=True)

    async def _watch(self, key: TaskKey, agent: _Agent) -> None:
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        try:
            assert agent.proc.stdout is not None
            async for raw in agent.proc.stdout:
                tail.append(raw.decode("utf-8", "replace").rstrip("\n"))
            code = await agent.proc.wait()
        finally:
            # A runner whose agent died must not keep running unobserved.
            _kill_session(agent.proc.pid)
            self._agents.pop(key, None)
            shutil.rmtree(agent.workdir, ignore_errors=True)
        event = self._outcome(key, agent, code, list(tail))
        if event is not None and self._on_event is not None:
            await self._on_event(event)

    def _outcome(self, key: TaskKey, agent: _Agent, code: int, tail: list[str]) -> TaskEvent | None:
        if agent.cancel_reason:
            return TaskEvent(key, "failed", _now(), error=agent.cancel_reason)
        if code == 0:
            # The agent reported the outcome itself; this changes nothing unless it did not.
            return TaskEvent(key, "success", _now())
        if not self._report_lost:
            return None
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        detail = f": {tail[-1]}" if tail else ""
        return TaskEvent(key, "failed", _now(), error=f"the agent {how}{detail}")


async def _stop_session(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the agent (it stops its task and reports), SIGKILL the session after a grace."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=_KILL_GRACE_SECONDS)
        except TimeoutError:
            _kill_session(proc.pid)
            await proc.wait()
    _kill_session(proc.pid)


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (the agent and the runner's process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after "(comm)": state ppid pgrp session ...
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 3 and fields[3] == str(sid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def with_agent_token(job: TaskJob, issuer: AgentTokenIssuer) -> TaskJob:
    """The job with its try's agent token in ``env`` (what a pod-based executor needs).

    Variables and connections (``AIRFLOW_VAR_*``/``AIRFLOW_CONN_*``) are taken out: the agent
    fetches them with GetSecrets, so they never sit in a pod manifest.
    """
    token = issuer.mint(job.key, tenant=job.tenant, timeout_seconds=job.timeout_seconds)
    env = {k: v for k, v in job.env.items() if not k.startswith(_SECRET_PREFIXES)}
    return replace(job, env={**env, "LEOFLOW_AGENT_TOKEN": token})


class AgentTokens(Executor):
    """Wraps a pod-based executor (kubernetes): each job gets its try's agent token first."""

    def __init__(self, inner: Executor, issuer: AgentTokenIssuer) -> None:
        self.inner = inner
        self.name = inner.name
        self._issuer = issuer

    async def start(self, on_event: EventCallback) -> None:
        """Start the wrapped executor."""
        await self.inner.start(on_event)

    async def submit(self, job: TaskJob) -> None:
        """Mint the token, then submit to the wrapped executor."""
        await self.inner.submit(with_agent_token(job, self._issuer))

    async def cancel(self, key: TaskKey, reason: str) -> None:
        """Cancel through the wrapped executor."""
        await self.inner.cancel(key, reason)

    def running(self) -> set[TaskKey]:
        """The wrapped executor's running keys."""
        return self.inner.running()

    async def stop(self) -> None:
        """Stop the wrapped executor."""
        await self.inner.stop()
