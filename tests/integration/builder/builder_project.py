"""Helpers shared by the builder's tests and bench: a demo project, its spec, a quiet console."""

from __future__ import annotations

import io
import shutil
import textwrap
from pathlib import Path

from rich.console import Console

from leoflow.project import LoadedProject, load_project
from leoflow.spec import DagSpec, finalize


def quiet_console() -> Console:
    """A console that records instead of printing to the terminal."""
    return Console(file=io.StringIO(), width=200, record=True)


DAG_PY = textwrap.dedent(
    """
    from airflow.sdk import DAG, task

    import helpers

    with DAG("build_demo", schedule=None):

        @task
        def hello():
            return helpers.greet()

        hello()
    """
)


def make_project(root: Path, image: str, *, extra_yaml: str = "") -> LoadedProject:
    """A small DAG project: dag.py, a helper module next to it, data and clutter to exclude."""
    if root.exists():
        shutil.rmtree(root)
    (root / "pkg").mkdir(parents=True)
    (root / "leoflow.yaml").write_text(
        f'dag_id: build_demo\npython_version: "3.11"\nregistry:\n  image: {image}\n{extra_yaml}'
    )
    (root / "dag.py").write_text(DAG_PY)
    (root / "helpers.py").write_text("def greet():\n    return 'hi from helpers'\n")
    (root / "pkg" / "__init__.py").write_text("VALUE = 42\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"junk")
    return load_project(root)


def make_spec(project: LoadedProject) -> DagSpec:
    """A compiled-looking spec whose hash follows dag.py's text (as compile's does)."""
    body = {
        "dag_id": "build_demo",
        "source": project.dag_path.read_text(),
        "tasks": [
            {
                "task_id": "hello",
                "type": "python",
                "operator": "PythonOperator",
                "callable": "dag:hello",
            }
        ],
    }
    return finalize(DagSpec.model_validate(body))
