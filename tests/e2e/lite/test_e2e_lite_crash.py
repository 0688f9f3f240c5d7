"""kill -9 of `leoflow lite` during a run, then start again: the run resumes and completes."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from e2e_lite_helpers import LiteProcess, api, gone_within, survivors

GATED_DAG = """
from datetime import timedelta
from pathlib import Path
import time

from airflow.sdk import DAG, task

GATE = Path({gate!r})

with DAG(dag_id="gated", schedule=None):

    @task(retries=2, retry_delay=timedelta(seconds=0))
    def wait_for_gate() -> str:
        # Blocks until the test opens the gate: the run is mid-flight when Lite is killed.
        while not GATE.exists():
            time.sleep(0.05)
        return GATE.read_text()

    @task
    def shout(value: str) -> str:
        return value.upper()

    shout(wait_for_gate())
"""


def _ti_state(client: object, run_id: str, task_id: str) -> str | None:
    ti = client.get(f"/dags/gated/dagRuns/{run_id}/taskInstances/{task_id}")  # type: ignore[attr-defined]
    return ti.json().get("state") if ti.status_code == 200 else None


def _wait(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_e2e_lite_run_survives_kill_9(
    lite_dirs: tuple[Path, Path], launch: Callable[..., LiteProcess]
) -> None:
    home, workspace = lite_dirs
    project = home.parent / "gated"
    project.mkdir(parents=True)
    gate = home.parent / "gate.txt"
    (project / "dag.py").write_text(textwrap.dedent(GATED_DAG.format(gate=str(gate))))

    first = launch(home, workspace, str(project))
    first.wait_healthy()
    password = first.wait_output(r"admin / (\S+)").group(1)
    first.wait_output(r"ready in")
    with api(first.url, password) as client:
        created = client.post("/dags/gated/dagRuns", json={"logical_date": None})
        assert created.status_code == 200, created.text
        run_id = created.json()["dag_run_id"]
        _wait(lambda: _ti_state(client, run_id, "wait_for_gate") == "running", 60, "running")

    before = first.tree()
    first.kill()  # SIGKILL: no clean-up of any kind

    again = launch(home, workspace, str(project), port=first.port)
    again.wait_healthy()
    again.wait_output(r"ready in")
    gate.write_text("open")
    with api(again.url, password) as client:

        def finished() -> dict | None:
            run = client.get(f"/dags/gated/dagRuns/{run_id}").json()
            return run if run["state"] in ("success", "failed") else None

        run = _wait(finished, 120, "the run to finish")
        assert run["state"] == "success"  # type: ignore[index]
        value = client.get(
            f"/dags/gated/dagRuns/{run_id}/taskInstances/shout/xcomEntries/return_value"
        ).json()["value"]
        assert value == "OPEN"

    after = again.tree()
    again.terminate()
    assert again.proc.returncode == 0
    assert not gone_within(after, 5), "processes left behind after SIGTERM"
    assert not survivors(before), "processes of the killed Lite are still running"
