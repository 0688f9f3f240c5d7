"""Fixtures for the SDK tests: load a dag.py from source, and validate against the spec."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from leoflow.sdk import DAG, load_dags, serialize_dag
from leoflow.spec import DagSpec


@pytest.fixture(autouse=True)
def _restore_imports() -> Iterator[None]:
    """load_dags puts the compat `airflow` package on sys.path; undo it after each test."""
    path = list(sys.path)
    modules = set(sys.modules)
    meta = list(sys.meta_path)
    yield
    sys.path[:] = path
    sys.meta_path[:] = meta
    for name in set(sys.modules) - modules:
        if name == "airflow" or name.startswith("airflow.") or name in ("dag", "helpers"):
            del sys.modules[name]


@pytest.fixture
def load(tmp_path: Path) -> Callable[..., dict[str, DAG]]:
    """Write ``source`` (dedented) to tmp/dag.py and return load_dags of it."""

    def _load(source: str, name: str = "dag.py") -> dict[str, DAG]:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return load_dags(path)

    return _load


def _to_spec(dag: DAG) -> DagSpec:
    """serialize_dag minus the probe's extra keys, validated by the real spec model."""
    data: dict[str, Any] = serialize_dag(dag)
    assert isinstance(data.pop("_line"), int)
    for task in data["tasks"]:
        assert isinstance(task.pop("_explicit"), list)
    return DagSpec.model_validate(data)


def _line_of(source: str, marker: str) -> int:
    """The 1-based line of the first dedented line containing ``marker``."""
    for number, text in enumerate(textwrap.dedent(source).splitlines(), start=1):
        if marker in text:
            return number
    raise AssertionError(f"{marker!r} not in source")


@pytest.fixture
def to_spec() -> Callable[[DAG], DagSpec]:
    """serialize_dag, stripped of the extras and validated by leoflow.spec.DagSpec."""
    return _to_spec


@pytest.fixture
def line_of() -> Callable[[str, str], int]:
    """The line of a marker in a dag.py source."""
    return _line_of
