"""Workspace discovery, immutable bundles and generated secrets (files only, no servers)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from leoflow.errors import LeoflowError
from leoflow.lite.bundles import MARKER, Bundles
from leoflow.lite.secrets import ensure_secrets
from leoflow.lite.workspace import (
    collect_projects,
    ensure_workspace,
    examples_dir,
    find_projects,
    project_of,
)
from leoflow.spec import loads

EXAMPLES = examples_dir()


def test_liteapp_first_workspace_gets_the_examples(tmp_path: Path) -> None:
    workspace = tmp_path / "leoflow"
    copied = ensure_workspace(workspace)
    assert {p.name for p in copied} >= {"ml_hparam_search", "hello", "yaml_pipeline"}
    assert (workspace / "README.md").is_file()
    shutil.rmtree(workspace / "hello")
    assert ensure_workspace(workspace) == []  # an existing workspace is the user's
    assert not (workspace / "hello").exists()


def test_liteapp_workspace_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "ws").write_text("")
    with pytest.raises(LeoflowError, match="not a folder"):
        ensure_workspace(tmp_path / "ws")


def test_liteapp_find_projects_skips_hidden_and_nested(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "dag.py").write_text("")
    (tmp_path / "a" / "sub").mkdir()
    (tmp_path / "a" / "sub" / "dag.py").write_text("")  # inside a project: not its own
    (tmp_path / "group" / "b").mkdir(parents=True)
    (tmp_path / "group" / "b" / "leoflow.yaml").write_text("")
    (tmp_path / ".hidden" / "c").mkdir(parents=True)
    (tmp_path / ".hidden" / "c" / "dag.py").write_text("")
    (tmp_path / "notes").mkdir()
    found = sorted(find_projects(tmp_path))
    assert found == [tmp_path / "a", tmp_path / "group" / "b"]
    roots = [p.resolve() for p in found]
    assert project_of((tmp_path / "a" / "sub" / "x.py").resolve(), roots) == roots[0]
    assert project_of((tmp_path / "notes" / "x.py").resolve(), roots) is None


def test_liteapp_collect_projects_rejects_a_non_project(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(LeoflowError, match="not a Leoflow project"):
        collect_projects(tmp_path / "ws", [tmp_path / "empty"])
    with pytest.raises(LeoflowError, match="no such project folder"):
        collect_projects(tmp_path / "ws", [tmp_path / "missing"])


def test_liteapp_bundle_is_an_immutable_snapshot(tmp_path: Path) -> None:
    assert EXAMPLES is not None
    project = tmp_path / "yaml_pipeline"
    shutil.copytree(EXAMPLES / "yaml_pipeline", project)
    (project / "__pycache__").mkdir()
    (project / "__pycache__" / "steps.cpython-311.pyc").write_bytes(b"x")
    (project / "dag.json").write_text("{}")
    bundles = Bundles(tmp_path / "bundles")
    compiled = bundles.compile(project)
    bundle = compiled.bundle
    assert bundle == tmp_path / "bundles" / "yaml_pipeline" / compiled.spec.content_hash
    assert sorted(p.name for p in bundle.iterdir()) == [MARKER, "leoflow.yaml", "steps.py"]
    assert not (bundle / "steps.py").stat().st_mode & stat.S_IWUSR
    # The author keeps editing; the version's copy does not move.
    (project / "steps.py").write_text("# edited\n")
    assert (bundle / "steps.py").read_text() != "# edited\n"
    assert not (tmp_path / "bundles" / ".staging").exists() or not any(
        (tmp_path / "bundles" / ".staging").iterdir()
    )


def test_liteapp_compile_errors_name_the_users_file(tmp_path: Path) -> None:
    assert EXAMPLES is not None
    project = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", project)
    (project / "dag.py").write_text("import definitely_not_installed_xyz\n")
    with pytest.raises(LeoflowError) as caught:
        Bundles(tmp_path / "bundles").compile(project)
    text = str(caught.value)
    assert str(project.resolve() / "dag.py") in text
    assert ".staging" not in text


def test_liteapp_pushed_spec_gets_a_bundle_from_its_source(tmp_path: Path) -> None:
    assert EXAMPLES is not None
    spec = Bundles(tmp_path / "compiled").compile(EXAMPLES / "hello").spec
    spec = loads(spec.model_dump_json())
    bundle = Bundles(tmp_path / "bundles").ensure_for_spec(spec)
    assert (bundle / spec.source_file).read_text() == spec.source
    assert (bundle / MARKER).is_file()


def test_liteapp_concurrent_dispatches_share_one_bundle(tmp_path: Path) -> None:
    """A fan-out builds the jobs of one version at once: every caller gets the same bundle."""
    from concurrent.futures import ThreadPoolExecutor

    assert EXAMPLES is not None
    spec = Bundles(tmp_path / "compiled").compile(EXAMPLES / "hello").spec
    bundles = Bundles(tmp_path / "bundles")
    with ThreadPoolExecutor(max_workers=16) as pool:
        paths = list(pool.map(lambda _: bundles.ensure_for_spec(spec), range(64)))
    assert set(paths) == {bundles.path_of(spec)}
    assert (paths[0] / MARKER).is_file()
    assert (paths[0] / spec.source_file).read_text() == spec.source


def test_liteapp_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    first = ensure_secrets(tmp_path)
    second = ensure_secrets(tmp_path)
    assert first == second and len(first.jwt_secret) >= 32
    for name in ("jwt_secret", "secret_key"):
        assert (tmp_path / "credentials" / name).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "credentials").stat().st_mode & 0o777 == 0o700
    given = ensure_secrets(tmp_path, jwt_secret="from-env", secret_key="key-from-env")
    assert (given.jwt_secret, given.secret_key) == ("from-env", "key-from-env")
