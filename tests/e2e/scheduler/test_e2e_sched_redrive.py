"""Clear and mark re-drive a run as Airflow does; execution_timeout kills a try. Via the API."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.scheduler.conftest import Api

pytestmark = pytest.mark.slow


def _flip_dag(marker: Path) -> str:
    return f"""
from pathlib import Path

from airflow.sdk import DAG, task

MARKER = Path({str(marker)!r})


@task(retries=0)
def flip() -> str:
    # Fails on its first try ever, succeeds once cleared (the marker survives the try).
    if not MARKER.exists():
        MARKER.write_text("seen")
        raise RuntimeError("first try fails on purpose")
    return "recovered"


@task
def after(value: str) -> str:
    return value + "!"


with DAG("sched_clear", schedule=None):
    after(flip())
"""


def test_clearing_a_failed_task_reruns_it_and_the_run_finishes_again(
    api: Api, tmp_path: Path
) -> None:
    api.push_dag("sched_clear", _flip_dag(tmp_path / "flip-marker"))
    api.trigger("sched_clear", "r1")
    assert api.wait_run("sched_clear", "r1")["state"] == "failed"
    assert api.states("sched_clear", "r1") == {"flip": "failed", "after": "upstream_failed"}

    preview = api.clear(
        "sched_clear",
        dry_run=True,
        dag_run_id="r1",
        task_ids=["flip"],
        only_failed=True,
        include_downstream=True,
    )
    assert preview.status_code == 200, preview.text
    assert {t["task_id"] for t in preview.json()["task_instances"]} == {"flip", "after"}
    assert api.states("sched_clear", "r1") == {"flip": "failed", "after": "upstream_failed"}

    cleared = api.clear(
        "sched_clear",
        dry_run=False,
        dag_run_id="r1",
        task_ids=["flip"],
        only_failed=True,
        include_downstream=True,
    )
    assert cleared.status_code == 200, cleared.text
    assert {t["task_id"] for t in cleared.json()["task_instances"]} == {"flip", "after"}
    run = api.wait_run("sched_clear", "r1")
    assert run["state"] == "success"
    assert api.states("sched_clear", "r1") == {"flip": "success", "after": "success"}
    tries = api.tries("sched_clear", "r1", "flip")
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "success")]
    assert api.xcom("sched_clear", "r1", "after") == "recovered!"


MARK_RUNNING_DAG = """
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, task


@task
def downstream() -> str:
    return "ran"


with DAG("sched_mark_running", schedule=None):
    BashOperator(task_id="stuck", bash_command="echo started; sleep 120") >> downstream()
"""


def test_marking_a_running_task_success_runs_its_downstream(api: Api) -> None:
    api.push_dag("sched_mark_running", MARK_RUNNING_DAG)
    api.trigger("sched_mark_running", "r1")
    api.wait_for(
        lambda: api.log_lines("sched_mark_running", "r1", "stuck", 1),
        lambda lines: "started" in lines,
        30,
        "stuck to be running",
    )
    assert api.ti("sched_mark_running", "r1", "stuck")["state"] == "running"
    marked = api.patch_ti("sched_mark_running", "r1", "stuck", new_state="success")
    assert marked.status_code == 200, marked.text
    # The run ends long before the 120 s sleep: the downstream ran on the mark.
    assert api.wait_run("sched_mark_running", "r1", timeout=30)["state"] == "success"
    assert api.xcom("sched_mark_running", "r1", "downstream") == "ran"
    # The marked try's worker is killed; its late report must not undo the mark.
    api.wait_for(
        lambda: api.log_lines("sched_mark_running", "r1", "stuck", 1),
        lambda lines: any(line.startswith("task ") for line in lines),
        30,
        "the marked try's worker to end",
    )
    assert api.states("sched_mark_running", "r1") == {"stuck": "success", "downstream": "success"}
    stuck_tries = api.tries("sched_mark_running", "r1", "stuck")
    assert [(t["try_number"], t["state"]) for t in stuck_tries] == [(1, "success")]
    assert api.run("sched_mark_running", "r1")["state"] == "success"


MARK_FAILED_DAG = """
from airflow.sdk import DAG, task


@task(retries=0)
def broken() -> None:
    raise RuntimeError("fails on purpose")


@task
def downstream() -> str:
    return "ran"


with DAG("sched_mark_failed", schedule=None):
    broken() >> downstream()
"""


def test_marking_a_failed_task_success_resumes_its_downstream(api: Api) -> None:
    api.push_dag("sched_mark_failed", MARK_FAILED_DAG)
    api.trigger("sched_mark_failed", "r1")
    assert api.wait_run("sched_mark_failed", "r1")["state"] == "failed"
    assert api.states("sched_mark_failed", "r1") == {
        "broken": "failed",
        "downstream": "upstream_failed",
    }
    marked = api.patch_ti("sched_mark_failed", "r1", "broken", new_state="success")
    assert marked.status_code == 200, marked.text
    # Airflow's set_task_instance_state clears the failed/upstream_failed downstream of a
    # task marked success (only_failed, the task itself excluded) within the same request,
    # which re-queues the run; the scheduler then runs the downstream.
    assert api.ti("sched_mark_failed", "r1", "downstream")["state"] != "upstream_failed"
    assert api.run("sched_mark_failed", "r1")["state"] != "failed"
    assert api.wait_run("sched_mark_failed", "r1")["state"] == "success"
    assert api.states("sched_mark_failed", "r1") == {"broken": "success", "downstream": "success"}
    assert api.xcom("sched_mark_failed", "r1", "downstream") == "ran"


TIMEOUT_DAG = """
from datetime import timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("sched_timeout", schedule=None):
    BashOperator(
        task_id="sleepy",
        bash_command="echo going to sleep; sleep 120",
        execution_timeout=timedelta(seconds=2),
        retries=0,
    )
"""


def test_execution_timeout_kills_the_try_and_says_so_in_its_log(api: Api) -> None:
    api.push_dag("sched_timeout", TIMEOUT_DAG)
    api.trigger("sched_timeout", "r1")
    assert api.wait_run("sched_timeout", "r1", timeout=60)["state"] == "failed"
    ti = api.ti("sched_timeout", "r1", "sleepy")
    assert ti["state"] == "failed" and ti["try_number"] == 1
    took = datetime.fromisoformat(ti["end_date"]) - datetime.fromisoformat(ti["start_date"])
    assert 2 <= took.total_seconds() < 60
    lines = api.log_lines("sched_timeout", "r1", "sleepy", 1)
    assert "going to sleep" in lines
    assert any("execution_timeout of 2 s exceeded" in line for line in lines), lines
