"""Faults: an agent killed mid-task, with and without anyone noticing its death."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from leoflow.executors.agent import AgentExecutor
from leoflow.executors.base import TaskKey
from leoflow.logs import log_path
from leoflow.rpc.server import bind_agent_server
from leoflow.rpc.servicer import AgentServiceConfig
from leoflow.rpc.tokens import AgentTokenIssuer
from leoflow.scheduler.model import DecideConfig
from leoflow.scheduler.service import Scheduler
from leoflow.store.api import DagRunState, TIState

SLOW = """
from datetime import timedelta
import time

from airflow.sdk import DAG, task


@task(retries=1, retry_delay=timedelta(seconds=0))
def slow(ti=None) -> str:
    print(f"started try {ti.try_number}", flush=True)
    if ti.try_number == 1:
        time.sleep(600)
    return f"done on try {ti.try_number}"


with DAG("agent_slow", schedule=None):
    slow()
"""


def _runner_pid(events: list[str]) -> int:
    """The runner's pid, from the agent's "task started (runner pid N)" log line."""
    for event in events:
        found = re.search(r"runner pid (\d+)", event)
        if found:
            return int(found.group(1))
    raise AssertionError(f"no runner pid in {events}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


async def _kill_agent_mid_task(store, projects, agent_service, sched, poll) -> dict:
    """Start the run, wait until try 1 runs and logs live, SIGKILL its agent; return facts."""
    await projects.register("agent_slow", SLOW)
    await store.create_run("default", "agent_slow", run_id="r1")
    sched.wake()
    path = log_path(
        agent_service.logs_dir,
        dag_id="agent_slow",
        run_id="r1",
        task_id="slow",
        map_index=-1,
        try_number=1,
    )

    async def started():
        ti = await store.get_ti("default", "agent_slow", "r1", "slow")
        if ti.state is not TIState.RUNNING or not path.exists():
            return None
        events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
        return (ti, events) if "started try 1" in events else None

    # The task's own output is in the log file while the task still runs.
    ti, events = await poll(started, timeout=60, what="try 1 running with its first log line")
    runner_pid = _runner_pid(events)
    assert _alive(runner_pid)
    killed_at = datetime.now(UTC)
    os.kill(ti.pid, signal.SIGKILL)  # the agent (TI.pid is the registered agent's pid)
    return {"agent_pid": ti.pid, "runner_pid": runner_pid, "killed_at": killed_at}


async def _assert_retried(store, redis_store, poll) -> None:
    async def finished():
        run = await store.get_run("default", "agent_slow", "r1")
        return run if run.state in (DagRunState.SUCCESS, DagRunState.FAILED) else None

    run = await poll(finished, timeout=90, what="the run to finish after the retry")
    assert run.state is DagRunState.SUCCESS
    tries = await store.list_ti_tries("default", "agent_slow", "r1", "slow")
    assert [t.try_number for t in tries] == [1, 2]
    assert tries[0].state in (TIState.FAILED, TIState.UP_FOR_RETRY)
    value = await redis_store.get_xcom("default", "agent_slow", "r1", "slow", "return_value")
    assert value == "done on try 2"


async def test_agent_killed_unnoticed_is_retried_after_heartbeat_timeout(
    store, redis_store, projects, agent_service, agent_scheduler, poll
) -> None:
    # A vanished node: nobody reports the agent's death, only its heartbeats stop.
    sched, _executor = await agent_scheduler(heartbeat_timeout=3, report_lost_workers=False)
    facts = await _kill_agent_mid_task(store, projects, agent_service, sched, poll)

    async def reaped():
        ti = await store.get_ti("default", "agent_slow", "r1", "slow")
        return ti if ti.try_number > 1 or ti.state is not TIState.RUNNING else None

    ti = await poll(reaped, timeout=60, what="the silent try to be reaped")
    # Ended by the heartbeat timeout (3 s after the last beat, which was at most one 0.5 s
    # interval before the kill), not by anyone noticing the death.
    tries = await store.list_ti_tries("default", "agent_slow", "r1", "slow")
    first = tries[0]
    assert ti is not None and first.end_date is not None
    assert (first.end_date - facts["killed_at"]).total_seconds() >= 2.5
    # Nothing of the dead agent's try keeps running.
    await poll(
        lambda: _async(not _alive(facts["runner_pid"])), timeout=30, what="the runner to be gone"
    )
    await _assert_retried(store, redis_store, poll)


async def test_agent_killed_is_reported_failed_and_retried(
    store, redis_store, projects, agent_service, agent_scheduler, poll
) -> None:
    # On one host the executor sees its agent die: the try fails at once and is retried.
    sched, _executor = await agent_scheduler(heartbeat_timeout=300)
    facts = await _kill_agent_mid_task(store, projects, agent_service, sched, poll)
    await poll(
        lambda: _async(not _alive(facts["runner_pid"])), timeout=30, what="the runner to be gone"
    )
    await _assert_retried(store, redis_store, poll)


async def _async(value: object) -> object:
    return value


STUCK = """
import time

from airflow.sdk import DAG, task


@task
def stuck() -> None:
    print("working", flush=True)
    time.sleep(600)


with DAG("agent_stuck", schedule=None):
    stuck()
"""


async def test_agent_that_loses_the_control_plane_kills_its_task(
    tmp_path, store, redis_store, projects, settings, poll
) -> None:
    # Fail closed: the agent service goes away mid-task; the agent kills the task and exits 2.
    server, port, _servicer = await bind_agent_server(
        store,
        redis_store,
        settings,
        host="127.0.0.1",
        port=0,
        config=AgentServiceConfig(
            logs_dir=settings.logs_dir,
            heartbeat_interval_seconds=0.3,
            allow_insecure_secrets=True,
            resolve_dag_file=projects.dag_file,
        ),
    )
    executor = AgentExecutor(
        address=f"127.0.0.1:{port}",
        issuer=AgentTokenIssuer(settings.jwt_secret),
        work_root=tmp_path,
        extra_env={"LEOFLOW_AGENT_LOST_AFTER_SECONDS": "1.5"},
    )
    sched = Scheduler(
        store,
        redis_store,
        executor,
        projects.resolve,
        logs_dir=settings.logs_dir,
        config=DecideConfig(heartbeat_timeout=timedelta(seconds=300)),
        sweep_seconds=0.25,
    )
    task = asyncio.create_task(sched.run_forever())
    try:
        await projects.register("agent_stuck", STUCK)
        await store.create_run("default", "agent_stuck", run_id="r1")
        sched.wake()
        path = log_path(
            settings.logs_dir,
            dag_id="agent_stuck",
            run_id="r1",
            task_id="stuck",
            map_index=-1,
            try_number=1,
        )

        async def working():
            if not path.exists():
                return None
            events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
            return events if "working" in events else None

        events = await poll(working, timeout=60, what="the task to start working")
        runner_pid = _runner_pid(events)
        await server.stop(grace=0)
        await poll(lambda: _async(not _alive(runner_pid)), timeout=30, what="the task to be killed")

        async def failed():
            ti = await store.get_ti("default", "agent_stuck", "r1", "stuck")
            return ti if ti.state is TIState.FAILED else None

        await poll(failed, timeout=30, what="the try to be reported failed by the executor")
        tries = await store.list_ti_tries("default", "agent_stuck", "r1", "stuck")
        assert [t.try_number for t in tries] == [1]
    finally:
        sched.stop()
        await asyncio.wait_for(task, 30)
        await server.stop(grace=0)


async def test_agent_without_a_control_plane_exits_non_zero(tmp_path, settings) -> None:
    issuer = AgentTokenIssuer(settings.jwt_secret)
    token = issuer.mint(TaskKey("d", "r", "t"))
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
        "LEOFLOW_AGENT_ADDRESS": "127.0.0.1:1",
        "LEOFLOW_AGENT_TOKEN": token,
        "LEOFLOW_AGENT_CONNECT_TIMEOUT_SECONDS": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "leoflow.cli.main",
        "agent",
        env=env,
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert b"Register failed at 127.0.0.1:1" in err
    # And without its variables it says which one is missing.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "leoflow.cli.main",
        "agent",
        env={"PATH": env["PATH"], "PYTHONPATH": env["PYTHONPATH"]},
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and b"LEOFLOW_AGENT_ADDRESS is not set" in err


TIMEOUT = """
from datetime import timedelta
import time

from airflow.sdk import DAG, task


@task(execution_timeout=timedelta(seconds=1))
def too_slow() -> None:
    print("sleeping", flush=True)
    time.sleep(600)


with DAG("agent_timeout", schedule=None):
    too_slow()
"""


async def test_execution_timeout_kills_the_task(
    store, projects, agent_service, agent_scheduler, poll
) -> None:
    sched, _executor = await agent_scheduler()
    await projects.register("agent_timeout", TIMEOUT)
    await store.create_run("default", "agent_timeout", run_id="r1")
    sched.wake()

    async def finished():
        ti = await store.get_ti("default", "agent_timeout", "r1", "too_slow")
        return ti if ti.state is TIState.FAILED else None

    ti = await poll(finished, timeout=60, what="the timed-out try to fail")
    assert ti.try_number == 1
    path = log_path(
        agent_service.logs_dir,
        dag_id="agent_timeout",
        run_id="r1",
        task_id="too_slow",
        map_index=-1,
        try_number=1,
    )
    events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert "sleeping" in events
    runner_pid = _runner_pid(events)
    await poll(lambda: _async(not _alive(runner_pid)), timeout=30, what="the runner to be gone")
