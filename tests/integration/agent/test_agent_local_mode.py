"""The one-host "agent" mode as Lite or `leoflow server` would wire it, and stopping a try."""

from __future__ import annotations

import asyncio
import json
import os
import re

from leoflow.logs import log_path
from leoflow.rpc.server import start_local_agent_mode
from leoflow.scheduler.service import Scheduler
from leoflow.store.api import TIState

SLEEPER = """
import time

from airflow.sdk import DAG, task


@task
def sleeper() -> None:
    print("sleeping", flush=True)
    time.sleep(600)


with DAG("agent_marked", schedule=None):
    sleeper()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


async def test_marking_a_running_task_stops_its_agent(
    tmp_path, store, redis_store, projects, settings, poll
) -> None:
    sched: Scheduler | None = None

    def wake() -> None:
        if sched is not None:
            sched.wake()

    server, executor = await start_local_agent_mode(
        store,
        redis_store,
        settings,
        resolve_worker=projects.resolve,
        on_change=wake,
        work_root=tmp_path,
        heartbeat_interval_seconds=0.3,
    )
    sched = Scheduler(store, redis_store, executor, projects.resolve, logs_dir=settings.logs_dir)
    loop_task = asyncio.create_task(sched.run_forever())
    try:
        await projects.register("agent_marked", SLEEPER)
        await store.create_run("default", "agent_marked", run_id="r1")
        sched.wake()
        path = log_path(
            settings.logs_dir,
            dag_id="agent_marked",
            run_id="r1",
            task_id="sleeper",
            map_index=-1,
            try_number=1,
        )

        async def sleeping():
            if not path.exists():
                return None
            events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
            return events if "sleeping" in events else None

        events = await poll(sleeping, timeout=60, what="the task to sleep")
        runner_pid = next(
            int(m.group(1)) for e in events if (m := re.search(r"runner pid (\d+)", e))
        )
        ti = await store.get_ti("default", "agent_marked", "r1", "sleeper")
        agent_pid = ti.pid
        assert ti.state is TIState.RUNNING and agent_pid != os.getpid()
        # A user marks the running task failed: the next heartbeat stops the agent.
        await store.patch_ti("default", "agent_marked", "r1", "sleeper", state=TIState.FAILED)

        async def stopped():
            return not _alive(runner_pid) and not _alive(agent_pid)

        await poll(stopped, timeout=30, what="the agent and its task to stop")
        ti = await store.get_ti("default", "agent_marked", "r1", "sleeper")
        assert ti.state is TIState.FAILED and ti.try_number == 1

        async def logged():
            text = path.read_text()
            return "stopped by the control plane" in text

        await poll(logged, timeout=10, what="the stop reason in the log")
    finally:
        sched.stop()
        await asyncio.wait_for(loop_task, 30)
        await server.stop(grace=1)
