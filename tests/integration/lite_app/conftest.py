"""Fixtures for the Lite supervisor tests (helpers in liteapp_helpers.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from leoflow.lite.postgres import make_template


@pytest.fixture(scope="session")
def lite_base() -> Iterator[Path]:
    """A private base folder (0755 parents) for every Lite home of this run."""
    base = Path(tempfile.mkdtemp(prefix="leoflow-liteapp-tests-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(lite_base: Path) -> Path:
    """An initialised PGDATA copied by each home instead of running initdb."""
    return make_template(lite_base / "pgtemplate" / "pgdata")


@pytest.fixture
def new_home(lite_base: Path) -> Callable[[], tuple[Path, Path]]:
    """Factory: a fresh (home, workspace) pair."""

    def make() -> tuple[Path, Path]:
        root = Path(tempfile.mkdtemp(prefix="case-", dir=lite_base))
        return root / "home", root / "workspace"

    return make
