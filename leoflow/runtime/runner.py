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

Standard library only: this module is copied into every DAG venv and image.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

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


_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


def render_template(text: str, context: dict[str, Any]) -> str:
    """Fill ``{{ name }}`` / ``{{ name.attr }}`` from the context; leave unknown names as they are.

    Airflow renders bash_command with Jinja; Leoflow supports the plain variable subset, which
    covers ``{{ ds }}``, ``{{ run_id }}``, ``{{ params.x }}`` and ``{{ ti.try_number }}``.
    """

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

    return _TEMPLATE.sub(lookup, text)


def run_bash(command: str, env: dict[str, str]) -> str | None:
    """Run ``bash -c command``; stream its output; return the last stdout line (Airflow's XCom)."""
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
    op = find_task(Path(job["dag_file"]), job["dag_id"], job["task_id"])
    fn = getattr(op, "python_callable", None)
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


def find_task(dag_file: Path, dag_id: str, task_id: str) -> Any:
    """Import dag.py with the compat package and return the task object (by task_id)."""
    from leoflow.sdk.loader import load_dags

    dags = load_dags(dag_file)
    if dag_id not in dags:
        raise TaskFailure(f"{dag_file} no longer defines DAG {dag_id!r} (found {sorted(dags)})")
    try:
        return dags[dag_id].get_task(task_id)
    except KeyError:
        raise TaskFailure(f"DAG {dag_id!r} in {dag_file} has no task {task_id!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point: read the job file, run the task, write the result file."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m leoflow.runtime.runner JOB_JSON", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result = execute(job)
    if result["error"] and result["outcome"] == "failed":
        err = result["error"]
        print(err.get("traceback") or f"{err['type']}: {err['message']}", file=sys.stderr)
    sys.stdout.flush()
    tmp = Path(job["result_path"] + ".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(job["result_path"])
    return 0 if result["outcome"] in ("success", "skipped") else 1


if __name__ == "__main__":
    sys.exit(main())
