"""`leoflow init` scaffolds projects that compile and validate through the real CLI."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("flags", [[], ["--yaml"]], ids=["python", "yaml"])
def test_init_project_compiles(cli, tmp_path, flags):
    result = cli("init", "starter", *flags)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "starter"
    assert (root / "leoflow.yaml").is_file()
    assert cli("validate", "starter").returncode == 0
    compiled = cli("compile", "starter")
    assert compiled.returncode == 0, compiled.stderr
    doc = json.loads((root / "dag.json").read_text())
    assert doc["dag_id"] == "starter"
    assert sorted(t["task_id"] for t in doc["tasks"]) == [
        "announce",
        "extract",
        "load",
        "transform",
    ]
    load = next(t for t in doc["tasks"] if t["task_id"] == "load")
    assert load["xcom_inputs"]["total"]["task_id"] == "transform"
    assert load["retries"] == 1


def test_init_python_applies_task_override(cli, tmp_path):
    assert cli("init", "starter").returncode == 0
    assert cli("compile", "starter").returncode == 0
    doc = json.loads((tmp_path / "starter" / "dag.json").read_text())
    load = next(t for t in doc["tasks"] if t["task_id"] == "load")
    assert load["env"] == {"TARGET": "stdout"}
    assert doc["schedule"] == {"type": "cron", "expression": "@daily"}


def test_init_refuses_existing_project(cli, tmp_path):
    assert cli("init", "starter").returncode == 0
    again = cli("init", "starter")
    assert again.returncode != 0
    assert "refusing to overwrite" in again.stderr
    assert "Traceback" not in again.stderr
