"""The process executor: every task try in a fresh process of the DAG's own interpreter.

Each try gets its own working directory, a clean environment (PATH, HOME, LANG and TZ from the
host, nothing else) plus Airflow's context variables, the job's variables and connections
(``AIRFLOW_VAR_*`` / ``AIRFLOW_CONN_*``) and the task's env. The process leads its own process
group, so a timeout or a cancel kills everything the task started. stdout and stderr become log
lines (JSON lines on disk, plus an optional live callback), and the runner's result file becomes
the terminal event.

With ``warm_workers > 0`` (the default) a try is handed to a pre-started single-use worker of
its ``(python, dag_file)`` when one is ready (see ``warm.py``), else started cold; either way
the process runs that one try and exits. A warm worker starts with the clean base environment
only; the runner applies the try's env (context, variables, connections, task env) to
``os.environ`` after the hand-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leoflow.executors.base import EventCallback, Executor, TaskEvent, TaskJob, TaskKey
from leoflow.executors.forkserver import ZygotePool
from leoflow.executors.warm import (
    LOW_PRIORITY,
    WarmPool,
    WarmWorker,
    kill_worker,
    restore_priority,
)
from leoflow.logs import log_path

log = logging.getLogger("leoflow.executors.process")

LogCallback = Callable[[TaskKey, dict[str, Any]], Awaitable[None]]

_PASS_THROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "TMPDIR")
_KILL_GRACE_SECONDS = 5.0


def _now() -> datetime:
    return datetime.now(UTC)


def _runtime_pythonpath() -> str:
    """The directory holding the ``leoflow`` package (its stdlib-only runner and SDK)."""
    return str(Path(__file__).resolve().parent.parent.parent)


def context_env(job: TaskJob) -> dict[str, str]:
    """Airflow's ``AIRFLOW_CTX_*`` variables for a job."""
    key, ctx = job.key, job.context
    env = {
        "AIRFLOW_CTX_DAG_ID": key.dag_id,
        "AIRFLOW_CTX_TASK_ID": key.task_id,
        "AIRFLOW_CTX_DAG_RUN_ID": key.run_id,
        "AIRFLOW_CTX_TRY_NUMBER": str(key.try_number),
        "AIRFLOW_CTX_MAP_INDEX": str(key.map_index),
    }
    if ctx.get("logical_date"):
        env["AIRFLOW_CTX_LOGICAL_DATE"] = str(ctx["logical_date"])
    if ctx.get("owner"):
        env["AIRFLOW_CTX_DAG_OWNER"] = str(ctx["owner"])
    return env


@dataclass
class _Running:
    proc: asyncio.subprocess.Process
    workdir: Path
    task: asyncio.Task[None]
    cancel_reason: str | None = None


class ProcessExecutor(Executor):
    """Runs each try as ``<venv python> -m leoflow.runtime.runner job.json``."""

    name = "process"

    def __init__(
        self,
        *,
        logs_dir: Path,
        work_root: Path | None = None,
        on_log: LogCallback | None = None,
        max_parallel: int | None = None,
        warm_workers: int = 2,
        warm_max: int = 2,
        warm_idle_seconds: float = 600.0,
        worker_mode: str = "prestart",
        zygote_wait_seconds: float = 5.0,
    ) -> None:
        """``warm_workers``: pre-started workers kept per (python, dag file), 0 disables;
        the pool grows up to ``warm_max`` under demand and shrinks back after
        ``warm_idle_seconds`` without a try of that file. ``worker_mode="fork"`` forks each try
        from a preloaded zygote per DAG file instead (see ``forkserver.py``; opt-in); a try
        waits up to ``zygote_wait_seconds`` for its zygote to be ready before starting cold."""
        if worker_mode not in ("prestart", "fork"):
            raise ValueError(f"worker_mode must be 'prestart' or 'fork', not {worker_mode!r}")
        self._mode = worker_mode
        self._zygote_wait = zygote_wait_seconds
        self._logs_dir = logs_dir
        self._work_root = work_root
        self._on_log = on_log
        self._on_event: EventCallback | None = None
        self._running: dict[TaskKey, _Running] = {}
        self._starting: set[TaskKey] = set()
        self._slots = asyncio.Semaphore(max_parallel) if max_parallel else None
        self._hostname = socket.gethostname()
        self.warm_env = self._base_environment()
        self.warm = WarmPool(
            env=self.warm_env,
            size=warm_workers,
            max_size=warm_max,
            work_root=work_root,
            idle_seconds=warm_idle_seconds,
        )
        if worker_mode == "fork":
            self.warm.size = 0
        self.zygotes = ZygotePool(
            env=self.warm_env, work_root=work_root, idle_seconds=warm_idle_seconds
        )

    async def start(self, on_event: EventCallback) -> None:
        """Remember where events go."""
        self._on_event = on_event

    def running(self) -> set[TaskKey]:
        """Keys whose process is alive."""
        return set(self._running)

    async def prewarm(self, dag_file: Path, python: str) -> None:
        """Pre-start workers (or the zygote) for this DAG file now, before its first try."""
        if self._mode == "fork":
            self.zygotes.get(python, os.fspath(dag_file))
        else:
            self.warm.refill(python, os.fspath(dag_file))

    async def submit(self, job: TaskJob) -> None:
        """Start the try's process (no-op when it already runs)."""
        if self._on_event is None:
            raise RuntimeError("ProcessExecutor.start() must be called before submit()")
        if job.key in self._running or job.key in self._starting:
            return
        self._starting.add(job.key)
        try:
            if self._slots is not None:
                await self._slots.acquire()
            warm = await self.warm.take(job.python, os.fspath(job.dag_file))
            proc = await self._hand_off(job, warm) if warm is not None else None
            if proc is not None:
                assert warm is not None
                workdir = warm.workdir
            elif self._mode == "fork" and (forked := await self._fork(job)) is not None:
                proc, workdir = forked
            else:
                workdir = Path(tempfile.mkdtemp(prefix="leoflow-try-", dir=self._work_root))
                proc = await self._start_cold(job, workdir)
        finally:
            self._starting.discard(job.key)
        if proc is None:
            return
        result_file = workdir / "result.json"
        watcher = asyncio.create_task(self._watch(job, proc, workdir, result_file))
        self._running[job.key] = _Running(proc, workdir, watcher)
        await self._on_event(
            TaskEvent(job.key, "running", _now(), pid=proc.pid, hostname=self._hostname)
        )
        self.warm.refill(job.python, os.fspath(job.dag_file))

    async def _hand_off(self, job: TaskJob, warm: WarmWorker) -> asyncio.subprocess.Process | None:
        """Give ``job`` to a pre-started worker; None (worker discarded) if it is gone."""
        job_file = warm.workdir / "job.json"
        document = self._job_document(job, warm.workdir / "result.json")
        job_file.write_text(json.dumps(document), encoding="utf-8")
        env = context_env(job)
        env.update(job.env)
        line = json.dumps({"job_file": str(job_file), "env": env}) + "\n"
        proc = warm.proc
        try:
            if proc.stdin is None or proc.returncode is not None:
                raise ConnectionResetError("worker exited")
            # It pre-started at the lowest priority so as not to slow the control plane; the
            # try itself runs at normal priority.
            if LOW_PRIORITY:
                restore_priority(proc.pid)
            proc.stdin.write(line.encode())
            await proc.stdin.drain()
            proc.stdin.close()
        except (ConnectionError, OSError):
            await kill_worker(proc, warm.workdir)
            return None
        return proc

    async def _fork(self, job: TaskJob) -> tuple[Any, Path] | None:
        """Fork the try from its DAG file's zygote; None when none is ready (start cold)."""
        zygote = await self.zygotes.wait_ready(
            job.python, os.fspath(job.dag_file), self._zygote_wait
        )
        if zygote is None:
            return None
        workdir = Path(tempfile.mkdtemp(prefix="leoflow-try-", dir=self._work_root))
        job_file = workdir / "job.json"
        document = self._job_document(job, workdir / "result.json")
        job_file.write_text(json.dumps(document), encoding="utf-8")
        env = context_env(job)
        env.update(job.env)
        try:
            return await zygote.fork(job_file, env, workdir), workdir
        except (OSError, ValueError, KeyError) as exc:
            log.warning("zygote of %s failed to fork (%s); starting cold", job.dag_file, exc)
            self.zygotes.discard(job.python, os.fspath(job.dag_file))
            shutil.rmtree(workdir, ignore_errors=True)
            return None

    async def _start_cold(self, job: TaskJob, workdir: Path) -> asyncio.subprocess.Process | None:
        """Start a fresh interpreter for ``job``; None (failed event sent) when it cannot."""
        assert self._on_event is not None
        job_file = workdir / "job.json"
        result_file = workdir / "result.json"
        job_file.write_text(json.dumps(self._job_document(job, result_file)), encoding="utf-8")
        try:
            return await asyncio.create_subprocess_exec(
                job.python,
                "-m",
                "leoflow.runtime.runner",
                str(job_file),
                cwd=workdir,
                env=self._environment(job),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            if self._slots is not None:
                self._slots.release()
            shutil.rmtree(workdir, ignore_errors=True)
            await self._on_event(
                TaskEvent(job.key, "failed", _now(), error=f"could not start worker: {exc}")
            )
            return None

    async def cancel(self, key: TaskKey, reason: str) -> None:
        """Kill the try's process group; its watcher reports ``failed`` with ``reason``."""
        running = self._running.get(key)
        if running is None:
            return
        running.cancel_reason = reason
        await _kill_group(running.proc)

    async def stop(self) -> None:
        """Kill every process this executor started (warm ones too) and wait for the watchers.

        Running tries go first: a zygote being retired waits for its children.
        """
        running = list(self._running.values())
        for one in running:
            one.cancel_reason = one.cancel_reason or "executor stopped"
        await asyncio.gather(*(_kill_group(one.proc) for one in running))
        watchers = [r.task for r in self._running.values()]
        if watchers:
            await asyncio.gather(*watchers, return_exceptions=True)
        await self.warm.stop()
        await self.zygotes.stop()

    # -- internals -----------------------------------------------------------------------

    def _job_document(self, job: TaskJob, result_file: Path) -> dict[str, Any]:
        return {
            "dag_file": str(job.dag_file),
            "dag_id": job.key.dag_id,
            "task_id": job.key.task_id,
            "run_id": job.key.run_id,
            "try_number": job.key.try_number,
            "map_index": job.key.map_index,
            "task": job.task.model_dump(mode="json", by_alias=True),
            "xcom": job.xcom,
            "context": job.context,
            "result_path": str(result_file),
        }

    def _base_environment(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASS_THROUGH_ENV if k in os.environ}
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        # The venv's own site-packages stay first; the runner comes from the leoflow tree.
        env["PYTHONPATH"] = _runtime_pythonpath()
        # The runner kills its process group when this process dies (see die_with_parent).
        env["LEOFLOW_EXECUTOR_PID"] = str(os.getpid())
        return env

    def _environment(self, job: TaskJob) -> dict[str, str]:
        env = self._base_environment()
        env.update(context_env(job))
        env.update(job.env)
        return env

    async def _watch(
        self, job: TaskJob, proc: asyncio.subprocess.Process, workdir: Path, result_file: Path
    ) -> None:
        path = log_path(
            self._logs_dir,
            dag_id=job.key.dag_id,
            run_id=job.key.run_id,
            task_id=job.key.task_id,
            map_index=job.key.map_index,
            try_number=job.key.try_number,
            tenant=job.tenant,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        timed_out = False
        try:
            with path.open("a", encoding="utf-8") as sink:
                pumps = asyncio.gather(
                    self._pump(job.key, proc.stdout, sink, "stdout", "info"),
                    self._pump(job.key, proc.stderr, sink, "stderr", "error"),
                )
                try:
                    await asyncio.wait_for(proc.wait(), timeout=job.timeout_seconds)
                except TimeoutError:
                    timed_out = True
                    await _kill_group(proc)
                # Nothing the task started may outlive it (no leaking workers); this also
                # closes pipes that a stray background child still holds.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await pumps
                code = proc.returncode if proc.returncode is not None else -1
                event = self._outcome(job, code, result_file, timed_out)
                summary = f"task {event.state}" + (f": {event.error}" if event.error else "")
                level = "error" if event.state == "failed" else "info"
                await self._emit_line(job.key, sink, level, summary)
        finally:
            self._running.pop(job.key, None)
            if self._slots is not None:
                self._slots.release()
            # Removing a directory costs milliseconds on some filesystems: not on the loop,
            # and not before the event that lets the downstream start.
            cleanup = asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, workdir, True)
        assert self._on_event is not None
        try:
            await self._on_event(event)
        finally:
            await cleanup

    def _outcome(self, job: TaskJob, code: int, result_file: Path, timed_out: bool) -> TaskEvent:
        running = self._running.get(job.key)
        now = _now()
        if timed_out:
            return TaskEvent(
                job.key,
                "failed",
                now,
                error=f"execution_timeout of {job.timeout_seconds:g} s exceeded; "
                "the task's process group was killed",
            )
        if running is not None and running.cancel_reason:
            return TaskEvent(job.key, "failed", now, error=running.cancel_reason)
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return TaskEvent(
                job.key,
                "failed",
                now,
                error=f"the worker exited with code {code} without a result "
                "(killed, or out of memory?)",
            )
        error = result.get("error")
        message = f"{error['type']}: {error['message']}" if error else None
        return TaskEvent(
            job.key,
            result["outcome"],
            now,
            return_value=result.get("return_value"),
            has_return_value=bool(result.get("has_return_value")),
            xcom=result.get("xcom") or {},
            error=message,
            retryable=bool(result.get("retryable", True)),
        )

    async def _pump(
        self,
        key: TaskKey,
        stream: asyncio.StreamReader | None,
        sink: Any,
        name: str,
        level: str,
    ) -> None:
        if stream is None:
            return
        while True:
            raw = await stream.readline()
            if not raw:
                return
            text = raw.decode("utf-8", "replace").rstrip("\n")
            await self._emit_line(key, sink, level, text, logger=f"task.{name}")

    async def _emit_line(
        self, key: TaskKey, sink: Any, level: str, text: str, *, logger: str = "leoflow"
    ) -> None:
        event = {
            "timestamp": _now().isoformat().replace("+00:00", "Z"),
            "level": level,
            "event": text,
            "logger": logger,
        }
        sink.write(json.dumps(event) + "\n")
        sink.flush()
        if self._on_log is not None:
            with contextlib.suppress(Exception):
                await self._on_log(key, event)


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group, then SIGKILL it after a grace period."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout=_KILL_GRACE_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
