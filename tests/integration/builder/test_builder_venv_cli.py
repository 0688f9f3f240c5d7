"""`leoflow venv ensure` through typer, with real uv."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from leoflow.cli.venv import register


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """Root."""

    register(app)
    return app


def test_venv_ensure_builds_then_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "leoflow.yaml").write_text('dag_id: cli_dag\npython_version: "3.11"\n')
    (project / "dag.py").write_text("")
    monkeypatch.setenv("LEOFLOW_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    first = runner.invoke(_app(), ["venv", "ensure", str(project)])
    assert first.exit_code == 0, first.output
    assert "built venv for cli_dag" in first.output
    second = runner.invoke(_app(), ["venv", "ensure", str(project)])
    assert second.exit_code == 0 and "reused venv for cli_dag" in second.output
    assert (tmp_path / "home" / "venvs" / "cli_dag" / "current" / "bin" / "python").exists()


def test_venv_ensure_without_dag_id_says_how_to_name_it(tmp_path: Path) -> None:
    (tmp_path / "dag.py").write_text("")
    result = CliRunner().invoke(_app(), ["venv", "ensure", str(tmp_path)])
    assert result.exit_code != 0
    assert "no dag_id" in str(result.exception)
