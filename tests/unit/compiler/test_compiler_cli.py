"""`leoflow compile`, `validate` and `init` through typer's CliRunner (declarative projects,
so no dag.py subprocess is needed here; tests/integration/compiler drives the real thing)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from leoflow.cli.main import app
from leoflow.errors import BuildError, ProjectError
from leoflow.spec import loads

runner = CliRunner()


def _init_yaml(tmp_path, name="starter"):
    target = tmp_path / name
    result = runner.invoke(app, ["init", name, "--dir", str(target), "--yaml"])
    assert result.exit_code == 0, result.output
    return target


def test_init_yaml_then_compile(tmp_path):
    target = _init_yaml(tmp_path)
    assert sorted(p.name for p in target.iterdir()) == ["leoflow.yaml", "tasks.py"]
    result = runner.invoke(app, ["compile", str(target), "--dag-version", "v1"])
    assert result.exit_code == 0, result.output
    assert "Compiled starter: 4 task(s), version v1" in result.output
    spec = loads((target / "dag.json").read_text())
    assert spec.dag_id == "starter" and spec.version == "v1"
    assert spec.task("transform").xcom_inputs["numbers"].task_id == "extract"


def test_compile_output_option_and_image(tmp_path):
    target = _init_yaml(tmp_path)
    out = tmp_path / "build" / "out.json"
    result = runner.invoke(app, ["compile", str(target), "-o", str(out), "--image", "reg/x:1"])
    assert result.exit_code == 0, result.output
    assert not (target / "dag.json").exists()
    doc = json.loads(out.read_text())
    assert doc["runtime"]["image"] == "reg/x:1"
    assert loads(out.read_text()).content_hash == doc["content_hash"]


def test_validate_writes_nothing(tmp_path):
    target = _init_yaml(tmp_path)
    before = sorted(p.name for p in target.iterdir())
    result = runner.invoke(app, ["validate", str(target)])
    assert result.exit_code == 0, result.output
    assert "OK starter: 4 task(s), schedule @daily" in result.output
    assert sorted(p.name for p in target.iterdir()) == before


def test_push_needs_build(tmp_path):
    target = _init_yaml(tmp_path)
    result = runner.invoke(app, ["compile", str(target), "--push"])
    assert isinstance(result.exception, BuildError)
    assert "--push needs --build" in str(result.exception)
    assert not (target / "dag.json").exists()


def test_init_refuses_non_empty_dir(tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["init", "busy", "--dir", str(target)])
    assert isinstance(result.exception, ProjectError)
    assert "refusing to overwrite" in str(result.exception)
    assert (target / "keep.txt").read_text() == "mine"


def test_init_rejects_bad_name(tmp_path):
    result = runner.invoke(app, ["init", "bad name!", "--dir", str(tmp_path / "x")])
    assert isinstance(result.exception, ProjectError)
    assert not (tmp_path / "x").exists()


def test_init_python_variant_files(tmp_path):
    target = tmp_path / "py"
    result = runner.invoke(app, ["init", "pyproj", "--dir", str(target)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in target.iterdir()) == ["dag.py", "leoflow.yaml"]
    assert 'dag_id="pyproj"' in (target / "dag.py").read_text()
    assert "dag_id: pyproj" in (target / "leoflow.yaml").read_text()


def test_help_texts():
    for command in ("compile", "validate", "init"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "Usage" in result.output
    assert "--dag-version" in runner.invoke(app, ["compile", "--help"]).output


def test_build_and_push_pin_the_digest(tmp_path, monkeypatch):
    """The CLI's wiring around the builder: build the resolved ref, push it, pin the digest."""
    from leoflow.builder import image as image_mod

    calls = []

    def fake_build(project, spec, *, image, dockerfile, console):
        calls.append(("build", image, dockerfile.name))
        return "sha256:" + "1" * 64

    def fake_push(image, *, console):
        calls.append(("push", image))
        return "reg.example/starter@sha256:" + "2" * 64

    monkeypatch.setattr(image_mod, "build_image", fake_build)
    monkeypatch.setattr(image_mod, "push_image", fake_push)
    target = _init_yaml(tmp_path)
    args = ["compile", str(target), "--build", "--push", "--image", "reg.example/starter:v1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls == [
        ("build", "reg.example/starter:v1", "Dockerfile.leoflow"),
        ("push", "reg.example/starter:v1"),
    ]
    spec = loads((target / "dag.json").read_text())
    assert spec.runtime.image == "reg.example/starter@sha256:" + "2" * 64
    assert spec.version == "h" + spec.content_hash[:12]


def test_build_without_image_name(tmp_path):
    target = _init_yaml(tmp_path)
    result = runner.invoke(app, ["compile", str(target), "--build"])
    assert isinstance(result.exception, BuildError)
    assert result.exception.field == "registry.image"
