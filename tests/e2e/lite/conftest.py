"""Fixtures for the Lite end-to-end tests (helpers in e2e_lite_helpers.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from e2e_lite_helpers import LiteProcess, survivors

from leoflow.lite.procs import free_port


@pytest.fixture
def lite_dirs() -> Iterator[tuple[Path, Path]]:
    """A fresh (home, workspace) under a mkdtemp folder (0755 parents; see the Lite tests)."""
    root = Path(tempfile.mkdtemp(prefix="leoflow-e2e-lite-"))
    yield root / "home", root / "workspace"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def launch() -> Iterator[Callable[..., LiteProcess]]:
    """Factory: start `leoflow lite`; whatever is still running at the end is killed."""
    started: list[LiteProcess] = []
    trees: list[psutil.Process] = []

    def start(
        home: Path,
        workspace: Path,
        *args: str,
        port: int | None = None,
        command: list[str] | None = None,
    ) -> LiteProcess:
        lite = LiteProcess(home, workspace, port or free_port(), list(args), command)
        started.append(lite)
        return lite

    yield start
    for lite in started:
        trees.extend(lite.tree())
        lite.kill()
    for proc in survivors(trees):
        proc.kill()
