"""The scheduler service end to end: real Postgres, Redis, worker processes, compiled DAGs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from leoflow.store.api import DagRunState, TIState

MAP_REDUCE = """
from airflow.sdk import DAG, task


@task
def trial(lr: float) -> dict:
    if lr < 0:
        raise ValueError("negative learning rate")
    return {"lr": lr, "score": 1 - abs(lr - 0.05)}


@task(trigger_rule="all_done")
def select_best(trials: list) -> dict:
    ok = [t for t in trials if t is not None]
    return {"best": max(ok, key=lambda r: r["score"]), "n": len(trials), "missing": trials.count(None)}


with DAG("mapreduce", schedule=None):
    select_best([trial(lr) for lr in [0.001, 0.01, -1.0, 0.05, 0.1]])
"""

RETRY = """
from datetime import timedelta
from airflow.sdk import DAG, task


@task(retries=2, retry_delay=timedelta(seconds=0))
def flaky():
    raise RuntimeError("always broken")


@task
def after(x):
    return x


with DAG("retrying", schedule=None):
    after(flaky())
"""


async def _wait_for_run(store, dag_id: str, run_id: str, timeout: float = 60):
    """Poll the run's state until terminal (bounded by a deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        run = await store.get_run("default", dag_id, run_id)
        if run.state in (DagRunState.SUCCESS, DagRunState.FAILED):
            return run
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"run {run_id} still {run.state} after {timeout} s")
        await asyncio.sleep(0.05)


async def test_map_reduce_runs_end_to_end(store, redis_store, projects, scheduler) -> None:
    await projects.register("mapreduce", MAP_REDUCE)
    run = await store.create_run("default", "mapreduce", run_id="r1")
    scheduler.wake()
    run = await _wait_for_run(store, "mapreduce", "r1")
    # One branch fails; the reducer (the only leaf) runs under all_done, so the run succeeds.
    assert run.state is DagRunState.SUCCESS
    tis = {ti.task_id: ti for ti in (await store.list_tis("default", "mapreduce", "r1")).items}
    assert tis["trial__2"].state is TIState.FAILED
    assert tis["select_best"].state is TIState.SUCCESS
    value = await redis_store.get_xcom("default", "mapreduce", "r1", "select_best", "return_value")
    assert value == {"best": {"lr": 0.05, "score": 1.0}, "n": 5, "missing": 1}
    # Every task ran in its own process: pids differ.
    pids = {ti.pid for ti in tis.values()}
    assert len(pids) == len(tis)


async def test_failing_task_retries_then_fails_the_run(store, projects, scheduler) -> None:
    await projects.register("retrying", RETRY)
    await store.create_run("default", "retrying", run_id="r1")
    scheduler.wake()
    run = await _wait_for_run(store, "retrying", "r1")
    assert run.state is DagRunState.FAILED
    flaky = await store.get_ti("default", "retrying", "r1", "flaky")
    assert flaky.state is TIState.FAILED and flaky.try_number == 3
    tries = await store.list_ti_tries("default", "retrying", "r1", "flaky")
    assert [t.try_number for t in tries] == [1, 2, 3]
    after = await store.get_ti("default", "retrying", "r1", "after")
    assert after.state is TIState.UPSTREAM_FAILED


async def test_only_one_scheduler_leads(store, redis_store, projects, scheduler, tmp_path) -> None:
    from leoflow.executors.process import ProcessExecutor
    from leoflow.scheduler.service import Scheduler

    second = Scheduler(
        store,
        redis_store,
        ProcessExecutor(logs_dir=tmp_path / "logs2"),
        projects.resolve,
        logs_dir=tmp_path / "logs2",
        sweep_seconds=0.05,
    )
    task = asyncio.create_task(second.run_forever())
    try:
        deadline = datetime.now(UTC).timestamp() + 10
        while not scheduler.is_leader and datetime.now(UTC).timestamp() < deadline:
            await asyncio.sleep(0.02)
        assert scheduler.is_leader
        assert not second.is_leader
    finally:
        second.stop()
        await asyncio.wait_for(task, 10)


async def test_a_worker_that_cannot_be_prepared_fails_alone(
    store, redis_store, projects, tmp_path
) -> None:
    """A resolver error (no venv, no bundle) fails that try with the reason; others run."""
    from leoflow.executors.process import ProcessExecutor
    from leoflow.scheduler.service import Scheduler

    await projects.register("mapreduce", MAP_REDUCE)

    async def resolve(tenant, spec):  # type: ignore[no-untyped-def]
        raise RuntimeError("no interpreter for python 3.99")

    logs = tmp_path / "logs-broken"
    sched = Scheduler(store, redis_store, ProcessExecutor(logs_dir=logs), resolve, logs_dir=logs)
    task = asyncio.create_task(sched.run_forever())
    try:
        await store.create_run("default", "mapreduce", run_id="r1")
        sched.wake()
        run = await _wait_for_run(store, "mapreduce", "r1")
    finally:
        sched.stop()
        await asyncio.wait_for(task, 30)
    assert run.state is DagRunState.FAILED
    trial = await store.get_ti("default", "mapreduce", "r1", "trial")
    assert trial.state is TIState.FAILED
    lines = list(logs.rglob("attempt=1.log"))
    assert any("no interpreter for python 3.99" in p.read_text() for p in lines)
