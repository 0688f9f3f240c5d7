"""`leoflow lite --help`, `leoflow setup` and `leoflow doctor` through the real CLI app."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from leoflow.cli.main import app

runner = CliRunner()


def _env(tmp_path: Path) -> dict[str, str]:
    return {"LEOFLOW_HOME": str(tmp_path / "home"), "LEOFLOW_WORKSPACE": str(tmp_path / "ws")}


def test_liteapp_cli_help_lists_the_options() -> None:
    result = runner.invoke(app, ["lite", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("--port", "--host", "--executor", "reset-password"):
        assert option in result.output


def test_liteapp_cli_setup_makes_home_and_workspace(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["setup", "--skip-ui", "--skip-datastores", "--skip-venvs"],
        env={**_env(tmp_path), "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home").is_dir()
    assert (tmp_path / "ws" / "ml_hparam_search" / "dag.py").is_file()
    assert "ready." in result.output


def test_liteapp_cli_doctor_reports_problems_with_fixes(tmp_path: Path) -> None:
    (tmp_path / "ws").write_text("a file where the workspace should be")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = runner.invoke(
            app, ["doctor", "--port", str(port)], env={**_env(tmp_path), "COLUMNS": "200"}
        )
    assert result.exit_code == 1, result.output
    assert "is not a folder" in result.output
    assert f"port {port} is taken" in result.output
    assert "fix:" in result.output and "problem(s)" in result.output
