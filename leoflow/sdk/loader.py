"""load_dags: import a dag.py the way the probe and the runner both need it."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from leoflow.sdk import _context, _errors
from leoflow.sdk._errors import AuthoringError

if TYPE_CHECKING:
    from leoflow.sdk.dag import DAG

COMPAT_DIR = Path(__file__).resolve().parent.parent / "compat"


def prepare_sys_path(dag_file: Path) -> None:
    """Put the project dir, then the compat dir (for ``import airflow``), first on sys.path."""
    for entry in (str(Path(dag_file).resolve().parent), str(COMPAT_DIR)):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)


def load_dags(dag_file: Path) -> dict[str, DAG]:
    """Import ``dag_file`` as module ``<stem>`` and return every DAG it created, by dag_id.

    Exceptions from the file (SyntaxError, ModuleNotFoundError, AuthoringError...) propagate.
    """
    dag_file = Path(dag_file)
    prepare_sys_path(dag_file)
    name = dag_file.stem
    spec = importlib.util.spec_from_file_location(name, os.fspath(dag_file))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {dag_file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _errors.LOADING_FILES.append(os.fspath(dag_file))
    try:
        with _context.collect_dags() as created:
            spec.loader.exec_module(module)
    finally:
        _errors.LOADING_FILES.pop()
    dags: dict[str, DAG] = {}
    for d in created:
        if d.dag_id in dags:
            raise AuthoringError(
                f"dag_id {d.dag_id!r} is declared twice (lines {dags[d.dag_id].line} and {d.line})",
                path=d.path,
                line=d.line,
                hint="give each DAG a unique dag_id",
            )
        dags[d.dag_id] = d
    return dags
