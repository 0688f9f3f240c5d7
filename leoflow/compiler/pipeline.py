"""The compile pipeline: project folder -> finalized DagSpec.

1. ``load_project`` reads and validates leoflow.yaml (errors name file, line and key).
2. The DAG is captured: from the YAML declaration, or by running dag.py once in a subprocess
   (``probe.run_probe``) so this process never imports user code.
3. One DAG is selected (leoflow.yaml ``dag_id``), leoflow.yaml's overlay is applied, the graph
   and schedule are checked, and the models validate the result.
4. ``finalize`` sorts everything and stamps the content hash: same inputs, same bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leoflow.compiler.checks import check_graph, check_schedule, validate_spec
from leoflow.compiler.declarative import YamlSource, build_raw, display
from leoflow.compiler.merge import apply_project, check_overrides
from leoflow.errors import CompileError, ProjectError
from leoflow.project import LoadedProject, load_project
from leoflow.spec import DagSpec, finalize


@dataclass(frozen=True)
class CompileResult:
    """A compiled DAG and what it was compiled from."""

    spec: DagSpec
    project: LoadedProject
    source_path: Path
    declarative: bool
    found_dag_ids: tuple[str, ...]


@dataclass(frozen=True)
class _Captured:
    raw: dict[str, Any]
    explicit: dict[str, set[str]]
    dag_line: int | None
    source_path: Path
    text: str
    found: tuple[str, ...]


ProbeFn = Callable[..., dict[str, Any]]
"""``run_probe(dag_file, *, python=...) -> {"dags": [...], "error": ...}`` (see probe.py)."""


def compile_project(
    root: Path | str,
    *,
    dag_version: str | None = None,
    python: str | None = None,
    probe: ProbeFn | None = None,
) -> CompileResult:
    """Compile the project in ``root``; raises ProjectError or CompileError on bad input.

    ``probe`` replaces ``leoflow.compiler.probe.run_probe`` (tests pass canned DAGs).
    """
    project = load_project(root)
    _check_dockerfile(project)
    declarative = project.config.dag is not None
    captured = _capture_yaml(project) if declarative else _capture_python(project, python, probe)
    shown = display(captured.source_path)
    raw = captured.raw
    # The overlay never changes ids or edges, so the graph is checked on what the author wrote.
    check_graph(raw, shown)
    check_overrides(project, [t["task_id"] for t in raw["tasks"]], _config_display(project))
    merged = apply_project(raw, captured.explicit, project)
    merged["runtime"] = {
        "python_version": project.config.python_version,
        "dependencies": list(project.config.dependencies),
        "image": None,
    }
    merged["source"] = captured.text
    merged["source_file"] = _relative(captured.source_path, project.root)
    check_schedule(merged, shown, captured.dag_line)
    spec = validate_spec(merged, shown, captured.dag_line)
    return CompileResult(
        spec=finalize(spec, version=dag_version),
        project=project,
        source_path=captured.source_path,
        declarative=declarative,
        found_dag_ids=captured.found,
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # dag_file may point outside the project folder
        return path.name


def _read_source(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CompileError(
            f"not UTF-8 text (byte {exc.start})", path=shown, hint="save the file as UTF-8"
        ) from exc
    except OSError as exc:
        raise CompileError(f"cannot read the DAG file: {exc.strerror}", path=shown) from exc


def _config_display(project: LoadedProject) -> str:
    return display(project.config_path or project.root / "leoflow.yaml")


def _capture_yaml(project: LoadedProject) -> _Captured:
    source = YamlSource(project)
    shown = display(source.file)
    raw, explicit = build_raw(project, source, shown)
    return _Captured(
        raw=raw,
        explicit=explicit,
        dag_line=source.line() or 1,
        source_path=source.file,
        text=source.text,
        found=(raw["dag_id"],),
    )


def _check_dockerfile(project: LoadedProject) -> None:
    own = project.config.dockerfile
    if own and not (project.root / own).is_file():
        raise ProjectError(
            f"dockerfile {own!r} does not exist",
            path=_config_display(project),
            line=project.line_of("dockerfile"),
            field="dockerfile",
            hint="fix the path (relative to the project folder) or remove the key to use the "
            "generated Dockerfile",
        )


def _capture_python(project: LoadedProject, python: str | None, probe: ProbeFn | None) -> _Captured:
    if probe is None:
        from leoflow.compiler.probe import run_probe as probe

    dag_file = project.dag_path
    shown = display(dag_file)
    text = _read_source(dag_file, shown)
    outcome = probe(dag_file, python=python or sys.executable)
    if outcome.get("error"):
        raise probe_error(outcome["error"], shown)
    dags: list[dict[str, Any]] = outcome.get("dags") or []
    chosen = select_dag(dags, project, shown)
    raw, explicit, dag_line = strip_probe_keys(chosen)
    return _Captured(
        raw=raw,
        explicit=explicit,
        dag_line=dag_line,
        source_path=dag_file,
        text=text,
        found=tuple(d.get("dag_id", "?") for d in dags),
    )


def strip_probe_keys(
    raw: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, set[str]], int | None]:
    """Remove the probe's ``_line`` / ``_explicit`` annotations; return them separately."""
    out = {k: v for k, v in raw.items() if not k.startswith("_")}
    explicit: dict[str, set[str]] = {}
    tasks = []
    for task in raw.get("tasks") or []:
        explicit[str(task.get("task_id"))] = set(task.get("_explicit") or ())
        tasks.append({k: v for k, v in task.items() if not k.startswith("_")})
    out["tasks"] = tasks
    line = raw.get("_line")
    return out, explicit, line if isinstance(line, int) else None


def select_dag(dags: list[dict[str, Any]], project: LoadedProject, shown: str) -> dict[str, Any]:
    """The DAG leoflow.yaml asks for, or the only one; errors list what was found."""
    ids = [str(d.get("dag_id")) for d in dags]
    wanted = project.config.dag_id
    if not dags:
        raise CompileError(
            "no DAG found",
            path=shown,
            hint='declare one at module level: `with DAG(dag_id="my_dag", schedule=None):` '
            "or a function decorated with @dag that is called",
        )
    if wanted is None:
        if len(dags) > 1:
            raise CompileError(
                f"{len(dags)} DAGs found ({', '.join(ids)}) and leoflow.yaml sets no dag_id",
                path=shown,
                hint=f"add `dag_id: {ids[0]}` (or another of them) to leoflow.yaml",
            )
        return dags[0]
    matches = [d for d in dags if d.get("dag_id") == wanted]
    if len(matches) == 1:
        return matches[0]
    config_path, line = _config_display(project), project.line_of("dag_id")
    if matches:
        raise CompileError(f"DAG {wanted!r} is declared {len(matches)} times", path=shown)
    if len(dags) == 1:
        declared_at = f" (line {dags[0]['_line']})" if dags[0].get("_line") else ""
        raise ProjectError(
            f"leoflow.yaml says {wanted!r} but {shown} declares {ids[0]!r}{declared_at}",
            path=config_path,
            line=line,
            field="dag_id",
            hint=f"make them match: set `dag_id: {ids[0]}` in leoflow.yaml or rename the DAG "
            "in the DAG file",
        )
    raise ProjectError(
        f"DAG {wanted!r} not found in {shown}; found: {', '.join(ids)}",
        path=config_path,
        line=line,
        field="dag_id",
        hint="set dag_id in leoflow.yaml to one of the DAGs the file declares",
    )


_DEFAULT_HINTS = {
    "syntax": "fix the Python syntax on that line",
    "authoring": None,
    "exception": "dag.py runs once at compile time: keep heavy or failing work inside tasks",
    "timeout": "move slow work (network calls, big computations) into task functions",
    "crash": "check --python: it names the interpreter that runs dag.py once",
}


def _missing_module_hint(module: str, hint: str | None) -> str:
    top = module.split(".")[0]
    if not hint or "leoflow.yaml" not in hint:
        hint = (
            f"if {top!r} is a third-party package, add its pip name to `dependencies:` in "
            f'leoflow.yaml (e.g. dependencies: ["{top}"]), or import it inside the task function'
        )
    if top != "airflow" and "--python" not in hint:
        # Top-level imports only work when dag.py runs with an interpreter that has them.
        hint += "; to keep the import at the top of dag.py, compile with --python pointing at "
        hint += "an interpreter that has it (e.g. the DAG's .venv/bin/python)"
    return hint


def probe_error(error: dict[str, Any], shown: str) -> CompileError:
    """Turn the probe's error record into a CompileError pointing at the user's file."""
    kind = str(error.get("kind") or "exception")
    message = str(error.get("message") or "the DAG file could not be loaded")
    path = error.get("path")
    path = display(Path(path)) if path else shown
    hint = error.get("hint") or _DEFAULT_HINTS.get(kind)
    module = error.get("module")
    if kind == "missing_module":
        hint = _missing_module_hint(str(module or "?"), hint)
        if module and module not in message:
            message = f"{message} (module {module!r})"
    if kind == "crash" and error.get("traceback"):
        # The probe process died before reporting: its last output is all the user gets.
        tail = "\n".join(str(error["traceback"]).splitlines()[-20:])
        message = f"{message}:\n{tail}"
    line = error.get("line")
    return CompileError(message, path=path, line=line if isinstance(line, int) else None, hint=hint)
