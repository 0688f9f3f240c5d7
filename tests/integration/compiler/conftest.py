"""Fixtures for compiler integration tests: the real `leoflow` CLI in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from compiler_cli_helpers import EXAMPLES, run_cli


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`cli("compile", "proj")` runs the real CLI with the test's tmp dir as cwd."""
    return lambda *args: run_cli(*args, cwd=tmp_path)


@pytest.fixture
def example_copy(tmp_path: Path) -> Callable[[str], Path]:
    """A throw-away copy of an example project (compiling writes files next to dag.py)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("__pycache__"))
        return target

    return copy


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    """Write a project folder ``tmp/proj`` from file name -> text; returns it."""

    def make(**files: str) -> Path:
        root = tmp_path / "proj"
        root.mkdir(exist_ok=True)
        for name, text in files.items():
            (root / name.replace("__", ".")).write_text(text, encoding="utf-8")
        return root

    return make
