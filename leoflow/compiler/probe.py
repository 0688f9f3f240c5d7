"""The compile-time probe: import a dag.py once, in its own process, and report its DAGs.

Run by the compiler as ``python -m leoflow.compiler.probe DAG_FILE --out OUT_JSON`` with the
DAG's own interpreter, so it uses only the standard library and ``leoflow.sdk`` (no pydantic,
no yaml). User code may print, so the result goes to OUT_JSON, never stdout:

    {"dags": [serialize_dag(d), ...], "error": null}
    {"dags": [], "error": {"kind": ..., "message": ..., "path": ..., "line": N | null,
                           "hint": ... | null, "module": ... | null, "traceback": ... | null}}

``kind`` is "syntax", "missing_module", "authoring" or "exception" from the probe itself, and
"timeout" or "crash" from ``run_probe`` when the process does not report. The probe exits 0
whenever it could write OUT_JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

_MISSING_HINT = (
    "add it to `dependencies:` in leoflow.yaml (e.g. - pandas==2.2.2), or import it inside "
    "the task function"
)

_AIRFLOW_HINT = (
    "Leoflow provides only the Airflow authoring API (airflow.sdk, airflow.decorators, the "
    "standard and HTTP operators); import other libraries inside the task function instead"
)


def _error(
    kind: str,
    message: str,
    path: str,
    *,
    line: int | None = None,
    hint: str | None = None,
    module: str | None = None,
    tb: str | None = None,
) -> dict[str, Any]:
    return {
        "dags": [],
        "error": {
            "kind": kind,
            "message": message,
            "path": path,
            "line": line,
            "hint": hint,
            "module": module,
            "traceback": tb,
        },
    }


def _dag_line(exc: BaseException, dag_file: Path) -> int | None:
    """The innermost traceback line that lies in the dag file."""
    target = os.path.realpath(dag_file)
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.realpath(frame.filename) == target:
            line = frame.lineno
    return line


def _user_traceback(exc: BaseException) -> str:
    """The traceback without the probe's and the SDK's own frames."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ours = (os.path.join(here, ""), os.path.join(os.path.realpath(here), ""))
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not os.path.abspath(f.filename).startswith(ours) and not f.filename.startswith("<frozen")
    ]
    text = "".join(traceback.format_list(frames))
    return (
        "Traceback (most recent call last):\n"
        + text
        + "".join(traceback.format_exception_only(type(exc), exc))
    )


def _describe(exc: BaseException, dag_file: Path, shown: str) -> dict[str, Any]:
    from leoflow.sdk import AuthoringError

    if isinstance(exc, SyntaxError):
        same = exc.filename and os.path.realpath(exc.filename) == os.path.realpath(dag_file)
        path = shown if same or not exc.filename else exc.filename
        return _error("syntax", f"{exc.msg}", path, line=exc.lineno, tb=_user_traceback(exc))
    if isinstance(exc, AuthoringError):
        same = exc.path and os.path.realpath(exc.path) == os.path.realpath(dag_file)
        path = shown if same or not exc.path else exc.path
        return _error(
            "authoring", exc.message, path, line=exc.line, hint=exc.hint, tb=_user_traceback(exc)
        )
    line = _dag_line(exc, dag_file)
    if isinstance(exc, ModuleNotFoundError):
        name = exc.name or str(exc)
        hint = _AIRFLOW_HINT if name.split(".")[0] == "airflow" else _MISSING_HINT
        return _error(
            "missing_module",
            f"No module named {name!r}",
            shown,
            line=line,
            hint=hint,
            module=name,
            tb=_user_traceback(exc),
        )
    hint = None
    if isinstance(exc, ImportError) and (exc.name or "").split(".")[0] == "airflow":
        hint = _AIRFLOW_HINT
    return _error(
        "exception",
        f"{type(exc).__name__}: {exc}",
        shown,
        line=line,
        hint=hint,
        tb=_user_traceback(exc),
    )


def probe(dag_file: Path, shown: str | None = None) -> dict[str, Any]:
    """Import ``dag_file`` and return the probe result (in this process)."""
    from leoflow.sdk import load_dags, serialize_dag

    shown = shown or str(dag_file)
    try:
        dags = load_dags(dag_file)
        return {"dags": [serialize_dag(d) for d in dags.values()], "error": None}
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as exc:  # user code may raise anything, SystemExit included
        return _describe(exc, dag_file, shown)


def _write(out: Path, result: dict[str, Any]) -> None:
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, ensure_ascii=False, default=repr), encoding="utf-8")
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    """CLI entry: probe DAG_FILE and write the result to --out."""
    parser = argparse.ArgumentParser(prog="python -m leoflow.compiler.probe")
    parser.add_argument("dag_file")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out).absolute()  # user code may chdir
    dag_file = Path(args.dag_file)
    if not dag_file.is_file():
        result = _error("exception", f"no such file: {args.dag_file}", args.dag_file)
    else:
        result = probe(dag_file, args.dag_file)
    try:
        _write(out, result)
    except OSError as exc:
        print(f"probe: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    return 0


def _isolated_pythonpath(tmp: str) -> str:
    """A directory holding only a `leoflow` link, so the DAG's interpreter sees nothing else."""
    package = Path(__file__).resolve().parent.parent
    link = Path(tmp) / "leoflow"
    try:
        link.symlink_to(package, target_is_directory=True)
        return tmp
    except OSError:
        return str(package.parent)


def run_probe(dag_file: Path, *, python: str = sys.executable, timeout: float = 120) -> dict:
    """Run the probe on ``dag_file`` with interpreter ``python`` and return its parsed result."""
    dag_file = Path(dag_file)
    shown = str(dag_file)
    with tempfile.TemporaryDirectory(prefix="leoflow-probe-") as tmp:
        out = Path(tmp) / "probe.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = _isolated_pythonpath(tmp)
        env.pop("PYTHONHOME", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        cmd = [python, "-m", "leoflow.compiler.probe", str(dag_file.resolve()), "--out", str(out)]
        try:
            proc = subprocess.run(
                cmd,
                cwd=str(dag_file.resolve().parent),
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return _error(
                "timeout",
                f"importing the DAG file took longer than {timeout:g}s",
                shown,
                hint="move slow work (network, big computations) into task functions",
            )
        except OSError as exc:
            return _error("crash", f"cannot run {python}: {exc}", shown)
        if not out.is_file():
            tail = (proc.stderr or "").strip()[-2000:]
            return _error(
                "crash",
                f"the probe process exited with code {proc.returncode} without a result",
                shown,
                tb=tail or None,
            )
        result = json.loads(out.read_text(encoding="utf-8"))
    err = result.get("error")
    if err and err.get("path") and os.path.realpath(err["path"]) == str(dag_file.resolve()):
        err["path"] = shown
    return result


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter shutdown: threads or atexit hooks started by the DAG file must not hang
    # or fail the probe once its result is written.
    os._exit(code)
