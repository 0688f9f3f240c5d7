"""A DAG end to end through `leoflow agent` processes and the real control plane over gRPC."""

from __future__ import annotations

import json

from leoflow.store.api import DagRunState, TIState, Variable

PIPELINE = """
from datetime import timedelta
import os

from airflow.sdk import DAG, task
from airflow.providers.standard.operators.bash import BashOperator


@task
def extract() -> dict:
    print("extracting rows")
    return {"rows": [1, 2, 3]}


@task
def double(data: dict) -> list:
    return [r * 2 for r in data["rows"]]


@task
def square(data: dict) -> list:
    return [r * r for r in data["rows"]]


@task(retries=1, retry_delay=timedelta(seconds=0))
def flaky(ti=None) -> str:
    if ti.try_number == 1:
        raise RuntimeError("first try always breaks")
    return f"ok on try {ti.try_number}"


@task
def greet() -> str:
    return os.environ.get("AIRFLOW_VAR_GREETING", "<no variable>")


@task
def load(parts: list, note: str, greeting: str, ti=None) -> dict:
    ti.xcom_push(key="row_count", value=sum(len(p) for p in parts))
    return {"parts": parts, "note": note, "greeting": greeting}


with DAG("agent_pipeline", schedule=None):
    data = extract()
    shout = BashOperator(task_id="shout", bash_command="echo hello from bash")
    data >> shout
    load([double(data), square(data)], flaky(), greet())
"""


async def test_dag_runs_end_to_end_through_agents(
    store, redis_store, projects, agent_service, agent_scheduler, poll
) -> None:
    await projects.register("agent_pipeline", PIPELINE)
    await store.put_variable("default", Variable(key="greeting", value="hi from the store"))
    sched, _executor = await agent_scheduler()
    await store.create_run("default", "agent_pipeline", run_id="r1")
    sched.wake()

    async def finished():
        run = await store.get_run("default", "agent_pipeline", "r1")
        return run if run.state in (DagRunState.SUCCESS, DagRunState.FAILED) else None

    run = await poll(finished, timeout=120, what="run r1 finished")
    tis = {ti.task_id: ti for ti in (await store.list_tis("default", "agent_pipeline", "r1")).items}
    assert run.state is DagRunState.SUCCESS, {t: ti.state for t, ti in tis.items()}
    assert all(ti.state is TIState.SUCCESS for ti in tis.values())
    # Recorded by the agent service, as the agent's own report.
    assert {ti.executor for ti in tis.values()} == {"agent"}
    assert all(ti.pid and ti.hostname for ti in tis.values())

    # XCom passing, a fan-in in declaration order, an extra key, secrets from GetSecrets.
    value = await redis_store.get_xcom("default", "agent_pipeline", "r1", "load", "return_value")
    assert value == {
        "parts": [[2, 4, 6], [1, 4, 9]],
        "note": "ok on try 2",
        "greeting": "hi from the store",
    }
    count = await redis_store.get_xcom("default", "agent_pipeline", "r1", "load", "row_count")
    assert count == 6
    shout = await redis_store.get_xcom("default", "agent_pipeline", "r1", "shout", "return_value")
    assert shout == "hello from bash"

    # The failing task was retried: try 1 failed (up for retry), try 2 succeeded.
    tries = await store.list_ti_tries("default", "agent_pipeline", "r1", "flaky")
    assert [t.try_number for t in tries] == [1, 2]
    assert tries[0].state in (TIState.FAILED, TIState.UP_FOR_RETRY)
    assert tries[1].state is TIState.SUCCESS

    # Logs came through StreamLogs into the per-try log files.
    from leoflow.logs import log_path

    def lines(task_id: str, try_number: int = 1) -> list[dict]:
        path = log_path(
            agent_service.logs_dir,
            dag_id="agent_pipeline",
            run_id="r1",
            task_id=task_id,
            map_index=-1,
            try_number=try_number,
        )
        return [json.loads(line) for line in path.read_text().splitlines()]

    extract_log = lines("extract")
    assert {"event": "extracting rows", "logger": "task.stdout"}.items() <= extract_log[1].items()
    assert extract_log[-1]["event"] == "task success"
    assert any("first try always breaks" in e["event"] for e in lines("flaky", 1))
    assert lines("flaky", 2)[-1]["event"] == "task success"
    assert any(e["event"] == "hello from bash" for e in lines("shout"))
