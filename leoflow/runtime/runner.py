"""The runner: runs exactly one task try inside the DAG's own interpreter, then exits.

Protocol (the executor or the agent is the only caller)::

    python -m leoflow.runtime.runner JOB_JSON

``JOB_JSON`` is a file written by the caller (never environment variables: Linux refuses one
variable over 128 KiB, and XCom values may reach 256 KB each). It holds::

    {"dag_file": "/abs/project/dag.py", "dag_id": "...", "task_id": "...",
     "run_id": "...", "try_number": 1, "map_index": -1,
     "task": {... the TaskSpec of dag.json ...},
     "xcom": {"<upstream task_id>": {"<key>": <value>}},   # only outputs that exist
     "context": {"logical_date": ISO|null, "data_interval_start": ..., "data_interval_end": ...,
                 "run_after": ..., "params": {...}, "conf": {...}},
     "result_path": "/abs/result.json"}

The runner imports dag.py with the Airflow compatibility package on ``sys.path``, finds the task
by ``task_id`` (never by function name: one function may be many tasks), builds the arguments
(JSON literals, XCom inputs, fan-ins in declaration order with ``None`` where an upstream
produced nothing, plus Airflow context values the function asks for by name), calls it and writes
``result_path``::

    {"outcome": "success" | "failed" | "skipped", "retryable": bool,
     "has_return_value": bool, "return_value": <JSON>, "xcom": {"<key>": <JSON>},
     "error": null | {"type": "...", "message": "...", "traceback": "..."}}

Exit code 0 means success or skipped, 1 a task failure (the result file says why), 2 a usage
error. stdout and stderr are the task's log; the caller captures them line by line.

Pre-started (warm) mode, used by the process executor to take interpreter start and imports off
the critical path::

    python -m leoflow.runtime.runner --warm DAG_FILE [--ready-fd N] [--low-priority]

imports the SDK and ``DAG_FILE`` at once (an import error is kept and raised only when a Python
task needs the file; with --low-priority at the lowest CPU priority), writes one byte to fd N
and closes it (so the executor knows it is ready), then blocks on stdin for ONE hand-off line,
``{"job_file": "/abs/job.json", "env": {"AIRFLOW_CTX_DAG_ID": ..., ...}}``, applies ``env`` to
``os.environ``, runs that job exactly as above and exits. EOF before a line means "discarded":
exit 0 without running anything. The process never runs a second job.

Fork-server mode (opt-in, ``ProcessExecutor(worker_mode="fork")``)::

    python -m leoflow.runtime.runner --zygote DAG_FILE --ready-fd N --control-fd M

preloads once, then forks one fresh child per request; each child runs exactly one try as
above, in its own session, working directory and environment (see ``zygote_main``).

Standard library only: this module is copied into every DAG venv and image.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

# inspect, re, subprocess and traceback are imported where used: a bash or empty task never
# needs the first two, and every millisecond of import is paid once per task try.

XCOM_MAX_BYTES = 256 * 1024
RETURN_VALUE = "return_value"
SKIP_EXIT_CODE = 99
"""A bash command exiting 99 marks the task skipped, as Airflow's BashOperator does."""

_SKIP_EXCEPTIONS = {"AirflowSkipException", "TaskSkipped"}
_FAIL_NOW_EXCEPTIONS = {"AirflowFailException"}


class TaskFailure(Exception):
    """A failure the runner explains itself (bad return value, bash exit code...)."""


class _TaskInstance:
    """The ``ti`` / ``task_instance`` context object: XCom pull from inputs, push to the result."""

    def __init__(self, job: dict[str, Any], pushes: dict[str, Any]) -> None:
        self.dag_id = job["dag_id"]
        self.task_id = job["task_id"]
        self.run_id = job["run_id"]
        self.try_number = job.get("try_number", 1)
        self.map_index = job.get("map_index", -1)
        self._xcom = job.get("xcom", {})
        self._pushes = pushes

    def xcom_pull(
        self, task_ids: str | list[str] | None = None, key: str = RETURN_VALUE, **_: Any
    ) -> Any:
        """Values of upstream outputs this task declared (None where there is none)."""
        if task_ids is None:
            return None
        if isinstance(task_ids, str):
            return self._xcom.get(task_ids, {}).get(key)
        return [self._xcom.get(t, {}).get(key) for t in task_ids]

    def xcom_push(self, key: str, value: Any) -> None:
        """Store an extra XCom value under ``key`` (returned to the control plane)."""
        self._pushes[key] = value


class _DagRun:
    def __init__(self, job: dict[str, Any]) -> None:
        ctx = job.get("context", {})
        self.run_id = job["run_id"]
        self.dag_id = job["dag_id"]
        self.conf = ctx.get("conf") or {}
        self.logical_date = _parse_dt(ctx.get("logical_date"))
        self.run_after = _parse_dt(ctx.get("run_after"))


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def build_context(job: dict[str, Any], pushes: dict[str, Any]) -> dict[str, Any]:
    """Airflow's task context keys that a callable may ask for by parameter name."""
    ctx = job.get("context", {})
    logical = _parse_dt(ctx.get("logical_date")) or _parse_dt(ctx.get("run_after"))
    ti = _TaskInstance(job, pushes)
    context: dict[str, Any] = {
        "dag_id": job["dag_id"],
        "task_id": job["task_id"],
        "run_id": job["run_id"],
        "try_number": job.get("try_number", 1),
        "map_index": job.get("map_index", -1),
        "params": ctx.get("params") or {},
        "conf": ctx.get("conf") or {},
        "logical_date": logical,
        "data_interval_start": _parse_dt(ctx.get("data_interval_start")),
        "data_interval_end": _parse_dt(ctx.get("data_interval_end")),
        "ti": ti,
        "task_instance": ti,
        "dag_run": _DagRun(job),
    }
    if logical is not None:
        context.update(
            ds=logical.strftime("%Y-%m-%d"),
            ds_nodash=logical.strftime("%Y%m%d"),
            ts=logical.isoformat(),
            ts_nodash=logical.strftime("%Y%m%dT%H%M%S"),
        )
    return context


def resolve_arguments(task: dict[str, Any], xcom: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Call arguments by parameter name: literals, XCom inputs, and fan-ins in slot order."""

    def pull(ref: dict[str, Any]) -> Any:
        return xcom.get(ref["task_id"], {}).get(ref.get("key", RETURN_VALUE))

    args: dict[str, Any] = dict(task.get("call_args") or {})
    for name, ref in (task.get("xcom_inputs") or {}).items():
        args[name] = pull(ref)
    for name, fan_in in (task.get("fan_ins") or {}).items():
        values = [pull(s["ref"]) if s.get("ref") else s.get("value") for s in fan_in["slots"]]
        if fan_in["shape"] == "dict":
            args[name] = {s["key"]: v for s, v in zip(fan_in["slots"], values, strict=True)}
        elif fan_in["shape"] == "tuple":
            args[name] = tuple(values)
        else:
            args[name] = values
    return args


def bind_call(fn: Any, args: dict[str, Any], context: dict[str, Any]) -> tuple[list, dict]:
    """Positional and keyword arguments for ``fn`` (positional-only, *args, **kwargs honoured)."""
    import inspect

    sig = inspect.signature(fn)
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    accepts_kwargs = False
    for name, param in sig.parameters.items():
        if param.kind is param.VAR_KEYWORD:
            accepts_kwargs = True
            keywords.update(args.get(name) or {})
            continue
        if param.kind is param.VAR_POSITIONAL:
            positional.extend(args.get(name) or ())
            continue
        if name in args:
            value = args[name]
        elif name in context and (param.default is param.empty or param.default is None):
            # Airflow fills context keys even when the parameter defaults to None.
            value = context[name]
        else:
            continue
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(value)
        else:
            keywords[name] = value
    if accepts_kwargs:
        # The SDK flattens **kwargs call values into named arguments; they go back there.
        for key, value in args.items():
            if key not in sig.parameters:
                keywords[key] = value
        for key, value in context.items():
            keywords.setdefault(key, value)
    return positional, keywords


_TEMPLATE = r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}"


def render_template(text: str, context: dict[str, Any]) -> str:
    """Fill ``{{ name }}`` / ``{{ name.attr }}`` from the context; leave unknown names as they are.

    Airflow renders bash_command with Jinja; Leoflow supports the plain variable subset, which
    covers ``{{ ds }}``, ``{{ run_id }}``, ``{{ params.x }}`` and ``{{ ti.try_number }}``.
    """

    import re

    def lookup(match: re.Match[str]) -> str:
        parts = match.group(1).split(".")
        value: Any = context
        for part in parts:
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif not isinstance(value, dict) and hasattr(value, part):
                value = getattr(value, part)
            else:
                return match.group(0)
        return "" if value is None else str(value)

    return re.sub(_TEMPLATE, lookup, text)


def run_bash(command: str, env: dict[str, str]) -> str | None:
    """Run ``bash -c command``; stream its output; return the last stdout line (Airflow's XCom)."""
    import subprocess

    proc = subprocess.Popen(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        env={**os.environ, **env},
        text=True,
        bufsize=1,
    )
    last: str | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.strip():
            last = line.rstrip("\n")
    code = proc.wait()
    if code == SKIP_EXIT_CODE:
        raise _Skip(f"bash command exited with {SKIP_EXIT_CODE}: task skipped")
    if code != 0:
        raise TaskFailure(f"bash command failed with exit code {code}")
    return last


class _Skip(Exception):
    pass


def _check_value(value: Any, what: str) -> None:
    try:
        blob = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TaskFailure(
            f"{what} is not JSON-serializable ({exc}); return JSON values (str, int, float, "
            "bool, None, list, dict) or a reference such as a path or URL"
        ) from None
    size = len(blob.encode())
    if size > XCOM_MAX_BYTES:
        raise TaskFailure(
            f"{what} is {size} bytes; XCom values are capped at {XCOM_MAX_BYTES} bytes (256 KB): "
            "store large data elsewhere and return a reference (a path or URL)"
        )


def execute(job: dict[str, Any]) -> dict[str, Any]:
    """Run the task described by ``job``; return the result document (never raises)."""
    pushes: dict[str, Any] = {}
    result: dict[str, Any] = {
        "outcome": "success",
        "retryable": True,
        "has_return_value": False,
        "return_value": None,
        "xcom": pushes,
        "error": None,
    }
    task = job["task"]
    try:
        context = build_context(job, pushes)
        value = _run_task(job, task, context)
        if value is not None:
            _check_value(value, "the return value")
            result["has_return_value"] = True
            result["return_value"] = value
        for key, pushed in pushes.items():
            _check_value(pushed, f"XCom {key!r}")
    except _Skip as exc:
        result.update(outcome="skipped", error={"type": "Skipped", "message": str(exc)})
    except BaseException as exc:  # the task's own failure, whatever it is
        import traceback

        name = type(exc).__name__
        if name in _SKIP_EXCEPTIONS:
            result.update(outcome="skipped", error={"type": name, "message": str(exc)})
            return result
        result.update(
            outcome="failed",
            retryable=name not in _FAIL_NOW_EXCEPTIONS,
            error={
                "type": name,
                "message": str(exc),
                "traceback": "" if isinstance(exc, TaskFailure) else traceback.format_exc(),
            },
        )
    return result


def _run_task(job: dict[str, Any], task: dict[str, Any], context: dict[str, Any]) -> Any:
    kind = task["type"]
    env = {k: str(v) for k, v in (task.get("env") or {}).items()}
    if kind == "empty":
        return None
    if kind == "bash" and task.get("bash_command") is not None:
        return run_bash(render_template(task["bash_command"], context), env)
    os.environ.update(env)
    if job["dag_file"].endswith(".py"):
        op = find_task(Path(job["dag_file"]), job["dag_id"], job["task_id"])
        fn = getattr(op, "python_callable", None)
    else:  # a DAG declared in leoflow.yaml: its tasks name their callable as module:function
        op, fn = None, import_callable(Path(job["dag_file"]), task.get("callable") or "")
    if fn is None:
        raise TaskFailure(f"task {job['task_id']!r} has no Python callable")
    args = resolve_arguments(task, job.get("xcom") or {})
    positional, keywords = bind_call(fn, args, context)
    from leoflow.sdk import set_current_context

    set_current_context(context)
    value = fn(*positional, **keywords)
    if getattr(op, "multiple_outputs", False) and isinstance(value, dict):
        # Airflow pushes every key of the dict as its own XCom, besides return_value.
        for key, item in value.items():
            context["ti"].xcom_push(str(key), item)
    if kind == "bash":
        if not isinstance(value, str) or not value.strip():
            raise TaskFailure("a @task.bash function must return the bash command to run")
        return run_bash(render_template(value, context), env)
    return value


def import_callable(dag_file: Path, ref: str) -> Any:
    """Import ``module:function`` from the project folder of a declarative DAG."""
    import importlib

    from leoflow.sdk.loader import prepare_sys_path

    module, _, name = ref.partition(":")
    prepare_sys_path(dag_file)
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


_PRELOADED: dict[str, Any] = {}
"""Warm mode: dag file path -> its DAGs by dag_id, or the exception importing it raised."""


def find_task(dag_file: Path, dag_id: str, task_id: str) -> Any:
    """Import dag.py with the compat package and return the task object (by task_id)."""
    preloaded = _PRELOADED.get(os.fspath(dag_file))
    if isinstance(preloaded, BaseException):
        raise preloaded
    if preloaded is None:
        from leoflow.sdk.loader import load_dags

        preloaded = load_dags(dag_file)
    dags = preloaded
    if dag_id not in dags:
        raise TaskFailure(f"{dag_file} no longer defines DAG {dag_id!r} (found {sorted(dags)})")
    try:
        return dags[dag_id].get_task(task_id)
    except KeyError:
        raise TaskFailure(f"DAG {dag_id!r} in {dag_file} has no task {task_id!r}") from None


def preload(dag_file: str) -> None:
    """Warm mode: import the SDK and ``dag_file`` now; keep an import error for later."""
    import inspect  # noqa: F401  (warm the modules every Python task needs)
    import subprocess  # noqa: F401
    import traceback  # noqa: F401

    try:
        from leoflow.sdk.loader import load_dags

        _PRELOADED[dag_file] = load_dags(Path(dag_file))
    except BaseException as exc:  # raised again only if a Python task needs this file
        _PRELOADED[dag_file] = exc


def run_job(job: dict[str, Any]) -> int:
    """Run one job document and write its result file; the process exit code."""
    result = execute(job)
    if result["error"] and result["outcome"] == "failed":
        err = result["error"]
        print(err.get("traceback") or f"{err['type']}: {err['message']}", file=sys.stderr)
    sys.stdout.flush()
    tmp = Path(job["result_path"] + ".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(job["result_path"])
    return 0 if result["outcome"] in ("success", "skipped") else 1


WARM_NICE = 19
"""``--low-priority``: pre-starting yields to the control plane; the executor restores the
priority at hand-off (it asks for this only when it is allowed to restore it)."""


def lower_priority() -> None:
    """Lowest CPU priority for this process and, with autogroup scheduling, its session.

    A pre-started worker leads its own session, and Linux's autogroup scheduler shares CPU
    between sessions regardless of per-process nice values: both are lowered.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, WARM_NICE)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
        group.write(str(WARM_NICE))


def warm_main(dag_file: str, ready_fd: int | None = None, low_priority: bool = False) -> int:
    """Pre-started worker: preload, say so on ``ready_fd``, wait for ONE hand-off, run it."""
    if low_priority:
        lower_priority()
    preload(dag_file)
    sys.stdout.flush()
    if ready_fd is not None:
        with contextlib.suppress(OSError):
            os.write(ready_fd, b"R")
            os.close(ready_fd)
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # discarded before it got a job
    handoff = json.loads(line)
    # The task's env (AIRFLOW_CTX_*, AIRFLOW_VAR_*, AIRFLOW_CONN_*) is only known now.
    os.environ.update(handoff.get("env") or {})
    job = json.loads(Path(handoff["job_file"]).read_text(encoding="utf-8"))
    return run_job(job)


def zygote_main(dag_file: str, ready_fd: int, control_fd: int) -> int:
    """Fork server: preload once, then fork ONE fresh child per request, each runs one try.

    Requests arrive on ``control_fd`` (a SOCK_SEQPACKET socket): one JSON message
    ``{"job_file", "env", "cwd"}`` carrying two file descriptors (the child's stdout and
    stderr); the reply is ``{"pid": N}``. EOF retires the server: it exits once its running
    children have. The zygote reaps its children (SIGCHLD); the executor waits for them
    through a pidfd.
    """
    import signal
    import socket

    preload(dag_file)
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.write(ready_fd, b"R")
        os.close(ready_fd)
    # Reap children as they exit (their CPU time is then accounted to this process, where
    # tools can see it); the executor learns of each exit through its own pidfd.
    signal.signal(signal.SIGCHLD, _reap_children)
    control = socket.socket(fileno=control_fd)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1 << 16, 2)
        except OSError:
            message, fds = b"", []
        if not message:
            # Retired (its file changed, or it went idle): the children still running their
            # tries are tied to this process (PR_SET_PDEATHSIG), so outlive none of them.
            _wait_for_children()
            return 0
        # The child reports its pid only once it leads its own session, so the executor can
        # never signal a group that does not exist yet.
        started_r, started_w = os.pipe()
        request = json.loads(message)
        request["zygote_pid"] = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(started_r)
            _forked_child(request, fds, control, started_w)
        os.close(started_w)
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.read(started_r, 1)
        os.close(started_r)
        control.send(json.dumps({"pid": pid}).encode())


def _wait_for_children() -> None:
    import signal

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _reap_children(*_: Any) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _forked_child(request: dict[str, Any], fds: list[int], control: Any, started: int) -> None:
    """In a fork of the zygote: become the try's own process (group, cwd, output, env)."""
    import signal

    code = 1
    try:
        control.close()
        os.setsid()
        os.close(started)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        os.chdir(request["cwd"])
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.environ[PARENT_PID_ENV] = str(request["zygote_pid"])
        die_with_parent()
        os.environ.update(request.get("env") or {})
        job = json.loads(Path(request["job_file"]).read_text(encoding="utf-8"))
        code = run_job(job)
    finally:
        exit_now(code)


PARENT_PID_ENV = "LEOFLOW_EXECUTOR_PID"
"""Set by the process executor: the pid the runner must not outlive."""


def die_with_parent() -> None:
    """Linux: when the executor's process dies (even kill -9), kill this try's process group.

    A try whose control plane is gone can report nothing; letting it run on would only let a
    restarted scheduler start its retry while it still runs. ``PR_SET_PDEATHSIG`` delivers
    SIGTERM, whose handler SIGKILLs the whole group (bash children included).
    """
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    import signal

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
            return
    except (OSError, AttributeError, ImportError):
        return
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
    if str(os.getppid()) != parent:
        # Started through a wrapper, or the executor died before prctl took effect.
        try:
            os.kill(int(parent), 0)
        except ProcessLookupError:
            os.killpg(0, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def main(argv: list[str] | None = None) -> int:
    """Entry point: read the job file (or wait for one, with --warm), run the task."""
    argv = sys.argv[1:] if argv is None else argv
    die_with_parent()
    if len(argv) == 6 and argv[0] == "--zygote":
        return zygote_main(argv[1], int(argv[3]), int(argv[5]))
    if len(argv) >= 2 and argv[0] == "--warm":
        ready_fd = int(argv[argv.index("--ready-fd") + 1]) if "--ready-fd" in argv else None
        return warm_main(argv[1], ready_fd, low_priority="--low-priority" in argv)
    if len(argv) != 1:
        print(
            "usage: python -m leoflow.runtime.runner JOB_JSON"
            " | --warm DAG_FILE [--ready-fd N] [--low-priority]",
            file=sys.stderr,
        )
        return 2
    return run_job(json.loads(Path(argv[0]).read_text(encoding="utf-8")))


def exit_now(code: int) -> None:
    """End the process without the interpreter's teardown (15-60 ms of module and GC cleanup).

    What a task could observe still happens first: non-daemon threads are joined, ``atexit``
    handlers run (``logging.shutdown`` among them) and stdout/stderr are flushed.
    """
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()  # type: ignore[attr-defined]
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
