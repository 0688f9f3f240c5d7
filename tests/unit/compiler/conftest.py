"""Fixtures for compiler unit tests: throw-away project folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """Write leoflow.yaml (and dag.py unless None) into a fresh folder; return the folder."""

    def make(yaml_text: str = "", dag_py: str | None = "# dag\n", **files: str) -> Path:
        root = tmp_path / "proj"
        root.mkdir(exist_ok=True)
        (root / "leoflow.yaml").write_text(yaml_text, encoding="utf-8")
        if dag_py is not None:
            (root / "dag.py").write_text(dag_py, encoding="utf-8")
        for name, text in files.items():
            (root / name.replace("__", ".")).write_text(text, encoding="utf-8")
        return root

    return make
