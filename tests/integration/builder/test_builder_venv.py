"""Per-DAG venvs with real uv, real PyPI and the interpreters installed on this machine."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from leoflow.builder import venv as venv_mod
from leoflow.builder.venv import VenvInfo, ensure_venv, venv_python
from leoflow.errors import BuildError


def _python(info: VenvInfo, code: str) -> subprocess.CompletedProcess[str]:
    # cwd=/ so that nothing of this checkout leaks onto the venv's sys.path.
    return subprocess.run(
        [str(info.python), "-c", code], capture_output=True, text=True, cwd="/", check=False
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LEOFLOW_HOME shared by this module's tests (one uv cache)."""
    return tmp_path_factory.mktemp("leoflow-home")


@pytest.fixture(scope="module")
def two_dags(home: Path) -> tuple[VenvInfo, VenvInfo]:
    """Two DAGs pinning different versions of one package."""
    old = ensure_venv(home, "legacy_dag", "3.11", ["six==1.16.0"])
    new = ensure_venv(home, "new_dag", "3.11", ["six==1.17.0"])
    return old, new


def test_two_dags_each_import_their_own_version(two_dags: tuple[VenvInfo, VenvInfo]) -> None:
    old, new = two_dags
    assert not old.reused and not new.reused
    assert old.path != new.path
    assert _python(old, "import six; print(six.__version__)").stdout.strip() == "1.16.0"
    assert _python(new, "import six; print(six.__version__)").stdout.strip() == "1.17.0"


def test_the_slim_runtime_is_importable_without_the_clis_dependencies(
    two_dags: tuple[VenvInfo, VenvInfo],
) -> None:
    info = two_dags[0]
    ok = _python(info, "import leoflow, leoflow.sdk, leoflow.runtime; print(leoflow.__file__)")
    assert ok.returncode == 0, ok.stderr
    assert str(info.path) in ok.stdout  # the venv's own copy, not this checkout
    for forbidden in ("pydantic", "typer", "leoflow.spec"):
        missing = _python(info, f"import {forbidden}")
        assert missing.returncode != 0
        assert "ModuleNotFoundError" in missing.stderr


def test_a_warm_venv_is_reused_without_running_uv(
    home: Path, two_dags: tuple[VenvInfo, VenvInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_uv(*args: object, **kwargs: object) -> None:
        raise AssertionError("uv must not run for a warm venv")

    monkeypatch.setattr(venv_mod, "_uv", no_uv)
    again = ensure_venv(home, "legacy_dag", "3.11", [" six==1.16.0"])
    assert again.reused is True
    assert again.path == two_dags[0].path
    assert (
        venv_python(home, "legacy_dag")
        == home / "venvs" / "legacy_dag" / "current" / "bin" / "python"
    )


def test_a_failed_build_keeps_the_working_venv_and_leaves_nothing_behind(
    home: Path, two_dags: tuple[VenvInfo, VenvInfo]
) -> None:
    dag_dir = home / "venvs" / "legacy_dag"
    before = sorted(p.name for p in dag_dir.iterdir())
    with pytest.raises(BuildError) as err:
        ensure_venv(home, "legacy_dag", "3.11", ["six==1.16.0", "leoflow-no-such-package-xyz==1.0"])
    message = str(err.value)
    assert "leoflow-no-such-package-xyz" in message  # uv's own reason is shown
    assert "dependencies" in message
    assert sorted(p.name for p in dag_dir.iterdir()) == before
    current = venv_python(home, "legacy_dag")
    assert current is not None
    out = subprocess.run(
        [str(current), "-c", "import six; print(six.__version__)"],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    )
    assert out.stdout.strip() == "1.16.0"


def test_changed_dependencies_swap_in_a_new_venv_and_keep_the_previous(home: Path) -> None:
    first = ensure_venv(home, "swap_dag", "3.12", [])
    second = ensure_venv(home, "swap_dag", "3.12", ["six==1.17.0"])
    assert first.key != second.key and not second.reused
    assert (home / "venvs" / "swap_dag" / "current").resolve() == second.path
    assert first.path.exists()  # a task started in it may still be running
    assert (
        _python(second, "import sys, six; print(sys.version_info[:2])").stdout.strip() == "(3, 12)"
    )
    back = ensure_venv(home, "swap_dag", "3.12", [])
    assert back.reused and back.path == first.path
    assert (home / "venvs" / "swap_dag" / "current").resolve() == first.path


def test_an_unknown_python_version_says_what_was_found(home: Path) -> None:
    with pytest.raises(BuildError) as err:
        ensure_venv(home, "odd_dag", "3.99", [])
    message = str(err.value)
    assert "no Python 3.99 interpreter" in message
    assert "3.11 (" in message  # the interpreters that are there are listed
    assert not (home / "venvs" / "odd_dag").exists() or not any(
        p.is_dir() for p in (home / "venvs" / "odd_dag").iterdir()
    )


def test_a_half_built_venv_from_a_crash_is_cleared_by_the_next_build(home: Path) -> None:
    dag_dir = home / "venvs" / "crash_dag"
    (dag_dir / "deadbeefdeadbeef" / "lib").mkdir(parents=True)  # no marker: never finished
    info = ensure_venv(home, "crash_dag", "3.11", [])
    assert not info.reused
    assert {p.name for p in dag_dir.iterdir()} == {".lock", "current", info.key}
