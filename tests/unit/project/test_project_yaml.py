"""leoflow.yaml: parsing, validation and line-numbered errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from leoflow.errors import ProjectError
from leoflow.project import load_project


def _project(tmp_path: Path, yaml_text: str, *, dag_py: bool = True) -> Path:
    (tmp_path / "leoflow.yaml").write_text(yaml_text)
    if dag_py:
        (tmp_path / "dag.py").write_text("")
    return tmp_path


def test_full_project_loads(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        'dag_id: etl\npython_version: "3.12"\ndependencies:\n  - pandas==2.2.2\n'
        "system_packages: [libpq5]\nregistry:\n  image: reg.local/etl\n"
        "defaults:\n  retries: 2\ntasks:\n  load:\n    retries: 5\n    env: {A: b}\n",
    )
    loaded = load_project(root)
    cfg = loaded.config
    assert cfg.dag_id == "etl" and cfg.python_version == "3.12"
    assert cfg.dependencies == ["pandas==2.2.2"] and cfg.registry.image == "reg.local/etl"
    assert cfg.tasks["load"].retries == 5 and cfg.defaults.retries == 2
    assert loaded.line_of("tasks", "load") == 11
    assert loaded.line_of("tasks", "load", "nonexistent") == 11


def test_no_yaml_is_fine_with_a_dag_py(tmp_path: Path) -> None:
    (tmp_path / "dag.py").write_text("")
    loaded = load_project(tmp_path)
    assert loaded.config.python_version == "3.11" and loaded.config_path is None


@pytest.mark.parametrize(
    ("text", "line", "field", "needle"),
    [
        ("dag_id: a\nfoo: 1\n", 2, "foo", "unknown key 'foo'"),
        ("dag_id: a\ntasks:\n  t:\n    retries: many\n", 4, "tasks.t.retries", "integer"),
        ("dag_id: a\ntasks:\n  t:\n    retriez: 1\n", 4, "tasks.t.retriez", "unknown key"),
        ("dag_id: a\npython_version: 2.7\n", 2, "python_version", "unknown python_version"),
        ("dag_id: a\ndependencies: ['not a spec!']\n", 2, "dependencies", "pip requirement"),
        ("dag_id: 'bad id'\n", 1, "dag_id", "invalid dag_id"),
    ],
)
def test_errors_name_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, needle: str
) -> None:
    with pytest.raises(ProjectError) as info:
        load_project(_project(tmp_path, text))
    err = info.value
    assert err.line == line and err.field == field and needle in err.message
    assert str(err).startswith(str(err.path)) and "leoflow.yaml" in str(err.path)


def test_unknown_key_hint_lists_known_keys(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as info:
        load_project(_project(tmp_path, "dag_id: a\ndefaults:\n  retrys: 1\n"))
    assert info.value.hint is not None and "retries" in info.value.hint


def test_yaml_syntax_and_duplicate_keys(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as info:
        load_project(_project(tmp_path, "dag_id: a\n  bad: [\n"))
    assert info.value.line is not None and "not valid YAML" in info.value.message
    with pytest.raises(ProjectError, match="duplicate key 'dag_id'") as dup:
        load_project(_project(tmp_path, "dag_id: a\ndag_id: b\n"))
    assert dup.value.line == 2


def test_missing_dag_py_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as info:
        load_project(_project(tmp_path, "dag_id: a\n", dag_py=False))
    assert "no dag.py" in info.value.message and "leoflow init" in (info.value.hint or "")


def test_yaml_dag_in_separate_file_with_its_own_lines(tmp_path: Path) -> None:
    (tmp_path / "leoflow.yaml").write_text("dag_id: y\n")
    (tmp_path / "dag.yaml").write_text("tasks:\n  a:\n    type: bash\n    bogus: 1\n")
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path)
    assert "dag.yaml" in str(info.value.path) and info.value.line == 4
    (tmp_path / "dag.yaml").write_text("tasks:\n  a:\n    type: bash\n    bash_command: echo\n")
    loaded = load_project(tmp_path)
    assert loaded.config.dag is not None and loaded.config.dag.tasks["a"].type == "bash"
