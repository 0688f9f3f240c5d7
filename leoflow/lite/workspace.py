"""The Lite workspace: the folder of DAG projects that ``leoflow lite`` registers and watches.

On first use ``$LEOFLOW_WORKSPACE`` (default ``~/leoflow``) is created holding a copy of every
example project shipped with Leoflow (``examples/`` in a checkout, ``leoflow/_examples`` in an
installed wheel). A project is a folder with a ``leoflow.yaml`` or a ``dag.py``: the workspace
folder itself, or any folder below it (hidden folders, virtualenvs and caches are skipped).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from leoflow.errors import LeoflowError

PROJECT_MARKERS = ("leoflow.yaml", "dag.py")
_SKIP_DIRS = {"__pycache__", "node_modules", "venv", ".venv", "build", "dist"}
_MAX_DEPTH = 3
_README = """\
# Leoflow workspace

Every folder here with a `leoflow.yaml` or a `dag.py` is a DAG project. While `leoflow lite`
runs, saving one of their files compiles it and registers a new version within a second.

Start a new one with `leoflow init my_dag --dir {workspace}/my_dag`.
"""


def examples_dir() -> Path | None:
    """The example projects: ``examples/`` in a checkout, ``leoflow/_examples`` when installed."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "examples", package / "_examples"):
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    return None


def _copy_ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _SKIP_DIRS or n.endswith((".pyc", ".pyo"))}


def ensure_workspace(workspace: Path) -> list[Path]:
    """Create the workspace with the examples on first use; return the projects copied.

    An existing workspace is left exactly as the user keeps it (examples deleted by the user
    do not come back).
    """
    workspace = Path(workspace).expanduser()
    if workspace.exists():
        if not workspace.is_dir():
            raise LeoflowError(
                "the workspace is not a folder",
                path=str(workspace),
                field="LEOFLOW_WORKSPACE",
                hint="point LEOFLOW_WORKSPACE at a folder (it is created when missing)",
            )
        return []
    try:
        workspace.mkdir(parents=True)
    except OSError as exc:
        raise LeoflowError(
            f"cannot create the workspace: {exc.strerror}",
            path=str(workspace),
            field="LEOFLOW_WORKSPACE",
            hint="choose a writable folder with LEOFLOW_WORKSPACE=/path/to/workspace",
        ) from exc
    (workspace / "README.md").write_text(_README.format(workspace=workspace), encoding="utf-8")
    source = examples_dir()
    if source is None:
        return []
    copied = []
    for example in sorted(source.iterdir()):
        if example.is_dir() and is_project(example):
            shutil.copytree(example, workspace / example.name, ignore=_copy_ignore)
            copied.append(workspace / example.name)
    return copied


def is_project(path: Path) -> bool:
    """True for a folder holding a ``leoflow.yaml`` or a ``dag.py``."""
    return any((path / marker).is_file() for marker in PROJECT_MARKERS)


def find_projects(root: Path) -> Iterator[Path]:
    """Every project at or below ``root`` (a project's own sub-folders are not searched)."""
    root = Path(root)
    if is_project(root):
        yield root
        return
    for dirpath, dirnames, _files in os.walk(root):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        keep = []
        for name in sorted(dirnames):
            if name.startswith(".") or name in _SKIP_DIRS:
                continue
            child = here / name
            if is_project(child):
                yield child
            elif depth + 1 < _MAX_DEPTH:
                keep.append(name)
        dirnames[:] = keep


def collect_projects(workspace: Path, extra: Iterable[Path] = ()) -> list[Path]:
    """The workspace's projects plus the command line's, resolved, without duplicates."""
    found: dict[Path, None] = {}
    if Path(workspace).is_dir():
        for path in find_projects(Path(workspace)):
            found[path.resolve()] = None
    for path in extra:
        path = Path(path).expanduser()
        if not path.is_dir():
            raise LeoflowError(
                "no such project folder",
                path=str(path),
                hint="pass folders that hold a dag.py or leoflow.yaml",
            )
        projects = list(find_projects(path))
        if not projects:
            raise LeoflowError(
                "not a Leoflow project (no leoflow.yaml or dag.py in it or below it)",
                path=str(path),
                hint="create one with `leoflow init NAME --dir PATH`",
            )
        for project in projects:
            found[project.resolve()] = None
    return list(found)


def project_of(path: Path, roots: Iterable[Path]) -> Path | None:
    """The registered project (one of ``roots``) that contains ``path``, if any."""
    path = Path(path)
    best: Path | None = None
    for root in roots:
        inside = path == root or root in path.parents
        if inside and (best is None or len(root.parts) > len(best.parts)):
            best = root
    return best
