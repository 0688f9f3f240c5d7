"""`leoflow push / auth / runs / dags` against a live server (typer's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from leoflow.cli.main import app
from leoflow.spec import dumps
from tests.integration.server.conftest import PASSWORD, make_spec

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_env(server: tuple[str, Any]) -> dict[str, str]:
    host, _ = server
    result = runner.invoke(
        app,
        ["auth", "create-token", "--username", "admin", "--password", PASSWORD, "--server", host],
    )
    assert result.exit_code == 0, result.output
    return {"LEOFLOW_SERVER": host, "LEOFLOW_TOKEN": result.output.strip()}


def test_create_token_prompts_and_refuses_bad_passwords(server: tuple[str, Any]) -> None:
    host, _ = server
    prompted = runner.invoke(
        app,
        ["auth", "create-token", "-u", "admin", "--server", host, "-o", "json"],
        input=PASSWORD + "\n",
    )
    assert prompted.exit_code == 0 and "access_token" in prompted.output
    wrong = runner.invoke(
        app, ["auth", "create-token", "-u", "admin", "-p", "nope", "--server", host]
    )
    assert wrong.exit_code != 0
    assert "Invalid credentials" in str(wrong.exception) or "Invalid credentials" in wrong.output


def test_push_list_trigger_status(cli_env: dict[str, str], tmp_path: Path) -> None:
    dag_file = tmp_path / "dag.json"
    dag_file.write_text(dumps(make_spec("cli_dag")))
    pushed = runner.invoke(app, ["push", str(dag_file)], env=cli_env)
    assert pushed.exit_code == 0, pushed.output
    assert "cli_dag" in pushed.output and "registered" in pushed.output
    again = runner.invoke(app, ["push", str(dag_file), "-o", "json"], env=cli_env)
    assert json.loads(again.output)["created"] is False
    listed = runner.invoke(app, ["dags", "list", "-o", "json"], env=cli_env)
    assert "cli_dag" in [d["dag_id"] for d in json.loads(listed.output)["dags"]]
    table = runner.invoke(app, ["dags", "list"], env=cli_env)
    assert table.exit_code == 0 and "cli_dag" in table.output
    triggered = runner.invoke(
        app,
        ["runs", "trigger", "cli_dag", "--conf", '{"rows": 2}', "--run-id", "c1", "-o", "json"],
        env=cli_env,
    )
    assert triggered.exit_code == 0, triggered.output
    assert json.loads(triggered.output)["conf"] == {"rows": 2}
    status = runner.invoke(app, ["runs", "status", "cli_dag", "c1", "-o", "json"], env=cli_env)
    body = json.loads(status.output)
    assert body["dag_run"]["dag_run_id"] == "c1" and len(body["task_instances"]) == 3
    runs = runner.invoke(app, ["runs", "list", "cli_dag"], env=cli_env)
    assert runs.exit_code == 0 and "c1" in runs.output


def test_bad_input_fails_cleanly(cli_env: dict[str, str], tmp_path: Path) -> None:
    bad_conf = runner.invoke(app, ["runs", "trigger", "cli_dag", "--conf", "{nope"], env=cli_env)
    assert bad_conf.exit_code != 0
    missing = runner.invoke(app, ["push", str(tmp_path / "absent.json")], env=cli_env)
    assert missing.exit_code != 0
    unknown = runner.invoke(app, ["runs", "status", "cli_dag", "does-not-exist"], env=cli_env)
    assert unknown.exit_code != 0 and "404" in str(unknown.exception)


def test_trigger_wait_exits_by_the_run_outcome(cli_env: dict[str, str], tmp_path: Path) -> None:
    """--wait follows the run; no scheduler runs here, so the test marks the run from outside."""
    import threading
    import time

    import httpx

    dag_file = tmp_path / "dag.json"
    dag_file.write_text(dumps(make_spec("wait_dag")))
    assert runner.invoke(app, ["push", str(dag_file)], env=cli_env).exit_code == 0
    headers = {"Authorization": f"Bearer {cli_env['LEOFLOW_TOKEN']}"}
    base = f"{cli_env['LEOFLOW_SERVER']}/api/v2/dags/wait_dag/dagRuns"
    for run_id, state, code in (("w-ok", "success", 0), ("w-bad", "failed", 1)):
        results: list[Any] = []
        args = ["runs", "trigger", "wait_dag", "--run-id", run_id, "--wait", "--poll", "0.1"]
        worker = threading.Thread(
            target=lambda a=args, out=results: out.append(runner.invoke(app, a, env=cli_env))
        )
        worker.start()
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/{run_id}", headers=headers).status_code == 404:
            assert time.monotonic() < deadline, "the CLI never created the run"
        httpx.patch(f"{base}/{run_id}", json={"state": state}, headers=headers).raise_for_status()
        worker.join(timeout=30)
        assert results and results[0].exit_code == code, (
            results[0].output if results else "no result"
        )
