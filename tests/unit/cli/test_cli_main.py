"""The `leoflow` entry point: version, help, exit codes and error rendering (real processes)."""

from __future__ import annotations

import subprocess
import sys

from leoflow import __version__


def _leoflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leoflow.cli.main", *args], capture_output=True, text=True
    )


def test_version_and_help() -> None:
    out = _leoflow("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"leoflow {__version__}"
    helped = _leoflow("--help")
    assert helped.returncode == 0
    for command in ("compile", "validate", "init", "push", "runs", "dags", "lite", "server"):
        assert command in helped.stdout


def test_typer_exit_codes_reach_the_shell() -> None:
    # `runs status` against a closed port fails through a LeoflowError or typer.Exit: never 0.
    out = _leoflow("runs", "status", "d", "r", "--server", "http://127.0.0.1:9", "--token", "t")
    assert out.returncode != 0


def test_errors_are_one_clean_line_without_traceback(tmp_path) -> None:
    out = _leoflow("validate", str(tmp_path / "missing"))
    assert out.returncode != 0
    assert "error:" in out.stderr and "Traceback" not in out.stderr
    debug = _leoflow("--debug", "validate", str(tmp_path / "missing"))
    assert "Traceback" in debug.stderr


def test_unknown_command_is_a_usage_error() -> None:
    out = _leoflow("frobnicate")
    assert out.returncode == 2 and "No such command" in out.stderr
