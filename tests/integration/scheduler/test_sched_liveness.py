"""Heartbeats, reaping of vanished workers, and wake-ups through LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from leoflow.executors.process import ProcessExecutor
from leoflow.scheduler.liveness import is_live_runner
from leoflow.scheduler.model import DecideConfig
from leoflow.scheduler.notify import notify_scheduler
from leoflow.scheduler.service import Scheduler, TickResult
from leoflow.store.api import DagRunState, TIState

SLEEPER = """
from airflow.sdk import DAG
from airflow.providers.standard.operators.bash import BashOperator

with DAG("sleeper", schedule=None):
    BashOperator(task_id="nap", bash_command="sleep 60", retries=1)
"""

QUICK = """
from airflow.sdk import DAG, task


@task
def hello():
    return "hi"


with DAG("quick", schedule=None):
    hello()
"""


async def _until(predicate, what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class CountingScheduler(Scheduler):
    """Counts ticks, so a test can see a wake-up arrive."""

    ticks = 0

    async def tick(self, now: datetime | None = None) -> TickResult:
        self.ticks += 1
        return await super().tick(now)


def _scheduler(store, redis_store, projects, tmp_path: Path, **kw) -> CountingScheduler:
    logs = tmp_path / "logs"
    executor = ProcessExecutor(logs_dir=logs, work_root=tmp_path, warm_workers=0)
    return CountingScheduler(store, redis_store, executor, projects.resolve, logs_dir=logs, **kw)


async def test_heartbeats_refresh_and_a_marked_try_is_killed(
    store, redis_store, projects, tmp_path
) -> None:
    await projects.register("sleeper", SLEEPER)
    sched = _scheduler(store, redis_store, projects, tmp_path, heartbeat_seconds=0.1)
    loop = asyncio.create_task(sched.run_forever())
    try:
        await store.create_run("default", "sleeper", run_id="r1")

        async def running() -> bool:
            ti = await store.get_ti("default", "sleeper", "r1", "nap")
            return ti.state is TIState.RUNNING and ti.pid is not None

        await _until(running, "the task to run")
        first = await store.get_ti("default", "sleeper", "r1", "nap")
        assert first.hostname == socket.gethostname() and first.executor == "process"

        async def beaten() -> bool:
            ti = await store.get_ti("default", "sleeper", "r1", "nap")
            return ti.last_heartbeat_at > first.last_heartbeat_at

        await _until(beaten, "a heartbeat")
        # A user marks the running task failed: the next heartbeat kills its worker.
        await store.patch_ti("default", "sleeper", "r1", "nap", state=TIState.FAILED)

        async def killed() -> bool:
            return not is_live_runner(first.pid) and sched.executor.running() == set()

        await _until(killed, "the worker to be killed")
        ti = await store.get_ti("default", "sleeper", "r1", "nap")
        assert ti.state is TIState.FAILED and ti.try_number == 1
    finally:
        sched.stop()
        await asyncio.wait_for(loop, 30)


async def test_a_vanished_local_worker_is_reaped_at_once(
    store, redis_store, projects, tmp_path
) -> None:
    await projects.register("sleeper", SLEEPER)
    run = await store.create_run("default", "sleeper", run_id="r1")
    assert await store.transition_run(run.id, DagRunState.RUNNING)
    await store.create_task_instances(run.id)
    ti = await store.get_ti("default", "sleeper", "r1", "nap")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs anything
    old = datetime.now(UTC) - timedelta(minutes=5)
    for state in (TIState.SCHEDULED, TIState.QUEUED):
        assert await store.transition_ti(ti.id, state, now=old)
    assert await store.transition_ti(
        ti.id,
        TIState.RUNNING,
        now=old,
        hostname=socket.gethostname(),
        pid=gone.pid,
        executor="process",
    )
    # Nothing near the 30 s heartbeat timeout has to pass: the pid is checked on this host.
    sched = _scheduler(
        store,
        redis_store,
        projects,
        tmp_path,
        config=DecideConfig(heartbeat_timeout=timedelta(hours=1)),
        heartbeat_seconds=0.1,
    )
    await sched.heartbeat_once()
    reaped = await store.get_ti("default", "sleeper", "r1", "nap")
    assert reaped.state is TIState.UP_FOR_RETRY and reaped.try_number == 1
    log_file = next((tmp_path / "logs").rglob("attempt=1.log"))
    assert "vanished" in log_file.read_text()


async def test_notify_wakes_an_idle_leader(store, redis_store, projects, tmp_path) -> None:
    await projects.register("quick", QUICK)
    # Sweeps so slow that only a wake-up can explain a quick reaction.
    sched = _scheduler(
        store, redis_store, projects, tmp_path, sweep_seconds=120, idle_sweep_seconds=120
    )
    loop = asyncio.create_task(sched.run_forever())
    try:

        async def settled() -> bool:
            return sched.is_leader and sched.ticks >= 1

        await _until(settled, "the first tick")
        before = sched.ticks
        await notify_scheduler(store.pool)

        async def woke() -> bool:
            return sched.ticks > before

        await _until(woke, "a tick after notify_scheduler", timeout=20)
        # A run created by another connection (as an API replica would) runs at once: the
        # store's trigger notifies on commit.
        await store.create_run("default", "quick", run_id="r1")

        async def done() -> bool:
            run = await store.get_run("default", "quick", "r1")
            return run.state is DagRunState.SUCCESS

        await _until(done, "the run to succeed without a sweep", timeout=60)
    finally:
        sched.stop()
        await asyncio.wait_for(loop, 30)
