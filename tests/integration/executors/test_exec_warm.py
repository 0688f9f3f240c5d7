"""Pre-started single-use workers of the process executor, with real processes."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from leoflow.executors.base import TaskEvent, TaskJob, TaskKey
from leoflow.executors.process import ProcessExecutor
from leoflow.spec import TaskSpec

DAG_PY = """
import os
from airflow.sdk import DAG, task

print("top-level import", os.environ.get("AIRFLOW_CTX_TASK_ID"))
VERSION = {version}


@task
def probe():
    import os
    return {{
        "version": VERSION,
        "pid": os.getpid(),
        "task": os.environ.get("AIRFLOW_CTX_TASK_ID"),
        "try": os.environ.get("AIRFLOW_CTX_TRY_NUMBER"),
        "var": os.environ.get("AIRFLOW_VAR_COLOR"),
        "mine": os.environ.get("MY_TASK_ENV"),
        "cwd": os.getcwd(),
    }}


@task
def waiter(path: str):
    import os
    import time

    deadline = time.time() + 30
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.01)
    return os.path.exists(path)


with DAG("warm_dag", schedule=None):
    probe()
    waiter("unused")
"""


class Events:
    """Collects executor events and waits for a terminal one (no sleeping)."""

    def __init__(self) -> None:
        self.items: list[TaskEvent] = []
        self._done: dict[TaskKey, asyncio.Event] = {}

    async def __call__(self, event: TaskEvent) -> None:
        self.items.append(event)
        if event.state != "running":
            self._done.setdefault(event.key, asyncio.Event()).set()

    async def wait(self, key: TaskKey) -> TaskEvent:
        await asyncio.wait_for(self._done.setdefault(key, asyncio.Event()).wait(), 60)
        return [e for e in self.items if e.key == key and e.state != "running"][-1]

    def pid(self, key: TaskKey) -> int:
        return next(e.pid for e in self.items if e.key == key and e.state == "running")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _until(predicate: Any, what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def dag_file(tmp_path: Path) -> Path:
    path = tmp_path / "warm_project" / "dag.py"
    path.parent.mkdir()
    path.write_text(DAG_PY.format(version=1))
    return path


@pytest.fixture
async def executor(tmp_path: Path):
    events = Events()
    ex = ProcessExecutor(logs_dir=tmp_path / "logs", work_root=tmp_path, warm_workers=2)
    await ex.start(events)
    ex.events = events  # type: ignore[attr-defined]
    yield ex
    await ex.stop()


def _job(dag_file: Path, try_number: int, **kw: Any) -> TaskJob:
    spec = TaskSpec.model_validate(
        {"task_id": "probe", "type": "python", "operator": "PythonOperator", "callable": "dag:p"}
    )
    key = TaskKey("warm_dag", "manual__1", "probe", -1, try_number)
    return TaskJob(key=key, task=spec, dag_file=dag_file, python=sys.executable, **kw)


async def test_tries_go_to_prestarted_workers_each_once(executor, dag_file, tmp_path) -> None:
    pool_key = (sys.executable, os.fspath(dag_file))
    await executor.prewarm(dag_file, sys.executable)
    await _until(lambda: len(executor.warm.workers(pool_key)) == 2, "two warm workers")
    warm_pids = {w.proc.pid for w in executor.warm.workers(pool_key)}
    seen: list[int] = []
    for try_number in (1, 2, 3):
        job = _job(
            dag_file,
            try_number,
            env={"AIRFLOW_VAR_COLOR": "blue", "MY_TASK_ENV": f"t{try_number}"},
        )
        await executor.submit(job)
        event = await executor.events.wait(job.key)
        assert event.state == "success", event.error
        value = event.return_value
        # The try's env reached os.environ although the process started before it was known.
        assert value["task"] == "probe" and value["try"] == str(try_number)
        assert value["var"] == "blue" and value["mine"] == f"t{try_number}"
        assert value["pid"] == executor.events.pid(job.key)
        assert Path(value["cwd"]).parent == tmp_path
        seen.append(value["pid"])
        # The process ran one try and is gone.
        await _until(lambda p=value["pid"]: not _alive(p), "the worker to exit")
    assert len(set(seen)) == 3, "every try ran in its own process"
    assert seen[0] in warm_pids, "the first try was handed to a pre-started worker"
    # Output printed at import time (before the hand-off) lands in the try's log.
    log_file = next((tmp_path / "logs").rglob("attempt=2.log"))
    assert "top-level import None" in log_file.read_text()


async def test_changed_dag_file_discards_warm_workers(executor, dag_file) -> None:
    pool_key = (sys.executable, os.fspath(dag_file))
    await executor.prewarm(dag_file, sys.executable)
    await _until(lambda: len(executor.warm.workers(pool_key)) == 2, "two warm workers")
    stale = [w.proc.pid for w in executor.warm.workers(pool_key)]
    dag_file.write_text(DAG_PY.format(version=2) + "\n# changed\n")
    job = _job(dag_file, 1)
    await executor.submit(job)
    event = await executor.events.wait(job.key)
    assert event.state == "success", event.error
    assert event.return_value["version"] == 2
    assert executor.events.pid(job.key) not in stale
    for pid in stale:
        await _until(lambda p=pid: not _alive(p), f"stale worker {pid} to be killed")


async def test_stop_leaves_no_process_behind(tmp_path, dag_file) -> None:
    events = Events()
    ex = ProcessExecutor(logs_dir=tmp_path / "logs", work_root=tmp_path, warm_workers=3)
    await ex.start(events)
    pool_key = (sys.executable, os.fspath(dag_file))
    job = _job(dag_file, 1)
    await ex.submit(job)
    await events.wait(job.key)
    await _until(lambda: len(ex.warm.workers(pool_key)) >= 3, "three warm workers")
    pids = [w.proc.pid for w in ex.warm.workers(pool_key)]
    # Spawns still in flight when stop() is called must not leak either.
    other = dag_file.with_name("other_dag.py")
    other.write_text(dag_file.read_text())
    ex.warm.refill(sys.executable, os.fspath(other))
    await ex.stop()
    assert ex.warm.workers() == []
    assert not [p for p in pids if _alive(p)]
    strays = []
    for proc_dir in Path("/proc").iterdir():
        if proc_dir.name.isdigit() and _alive(int(proc_dir.name)):
            try:
                cmdline = (proc_dir / "cmdline").read_bytes()
            except OSError:
                continue
            if os.fsencode(other) in cmdline or os.fsencode(dag_file) in cmdline:
                strays.append(int(proc_dir.name))
    assert strays == []
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith("leoflow-warm-")]
    assert leftovers == []


async def test_disabled_pool_starts_every_try_cold(tmp_path, dag_file) -> None:
    events = Events()
    ex = ProcessExecutor(logs_dir=tmp_path / "logs", work_root=tmp_path, warm_workers=0)
    await ex.start(events)
    try:
        job = _job(dag_file, 1, env={"AIRFLOW_VAR_COLOR": "red"})
        await ex.submit(job)
        event = await events.wait(job.key)
        assert event.state == "success" and event.return_value["var"] == "red"
        assert ex.warm.workers() == []
    finally:
        await ex.stop()


async def test_fork_mode_forks_a_fresh_child_per_try(tmp_path, dag_file) -> None:
    events = Events()
    ex = ProcessExecutor(logs_dir=tmp_path / "logs", work_root=tmp_path, worker_mode="fork")
    await ex.start(events)
    key = (sys.executable, os.fspath(dag_file))
    try:
        await ex.prewarm(dag_file, sys.executable)
        await _until(lambda: ex.zygotes.ready(*key) is not None, "the zygote")
        zygote = ex.zygotes.ready(*key)
        assert zygote is not None
        seen = []
        for try_number in (1, 2):
            job = _job(dag_file, try_number, env={"MY_TASK_ENV": f"t{try_number}"})
            await ex.submit(job)
            event = await events.wait(job.key)
            assert event.state == "success", event.error
            value = event.return_value
            assert value["mine"] == f"t{try_number}" and value["try"] == str(try_number)
            assert value["pid"] == events.pid(job.key) != zygote.proc.pid
            assert Path(value["cwd"]).name.startswith("leoflow-try-")
            seen.append(value["pid"])
        assert len(set(seen)) == 2
        # A changed file gets a new zygote: the old one is killed, the next try sees v2.
        dag_file.write_text(DAG_PY.format(version=2) + "\n# v2\n")
        old_pid = zygote.proc.pid
        ex.zygotes.get(*key)
        await _until(lambda: ex.zygotes.ready(*key) is not None, "the new zygote")
        await _until(lambda: not _alive(old_pid), "the old zygote to be killed")
        job = _job(dag_file, 3)
        await ex.submit(job)
        event = await events.wait(job.key)
        assert event.return_value["version"] == 2
        new_pid = ex.zygotes.ready(*key).proc.pid  # type: ignore[union-attr]
    finally:
        await ex.stop()
    await _until(lambda: not _alive(new_pid), "the zygote to be killed on stop")


async def test_a_retired_zygote_lets_its_running_try_finish(tmp_path, dag_file) -> None:
    events = Events()
    ex = ProcessExecutor(logs_dir=tmp_path / "logs", work_root=tmp_path, worker_mode="fork")
    await ex.start(events)
    key = (sys.executable, os.fspath(dag_file))
    release = tmp_path / "release"
    try:
        await ex.prewarm(dag_file, sys.executable)
        await _until(lambda: ex.zygotes.ready(*key) is not None, "the zygote")
        old = ex.zygotes.ready(*key)
        assert old is not None
        spec = TaskSpec.model_validate(
            {
                "task_id": "waiter",
                "type": "python",
                "operator": "PythonOperator",
                "callable": "dag:waiter",
                "call_args": {"path": str(release)},
            }
        )
        job = TaskJob(
            key=TaskKey("warm_dag", "manual__1", "waiter", -1, 1),
            task=spec,
            dag_file=dag_file,
            python=sys.executable,
        )
        await ex.submit(job)
        # Hot reload: the file changes while the try runs; its zygote is retired, not killed.
        dag_file.write_text(DAG_PY.format(version=3) + "\n# v3\n")
        ex.zygotes.get(*key)
        await _until(lambda: ex.zygotes.ready(*key) is not None, "the new zygote")
        assert ex.running() == {job.key}
        release.touch()
        event = await events.wait(job.key)
        assert event.state == "success" and event.return_value is True, event.error
        await _until(lambda: not _alive(old.proc.pid), "the retired zygote to exit")
    finally:
        await ex.stop()
