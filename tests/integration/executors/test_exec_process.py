"""The process executor and the runner, end to end with real processes (no mocks)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from leoflow.executors.base import TaskEvent, TaskJob, TaskKey
from leoflow.executors.process import ProcessExecutor
from leoflow.logs import log_path
from leoflow.spec import TaskSpec

DAG_PY = """
from airflow.sdk import DAG, task


@task
def produce(x: int) -> dict:
    print("producing", x)
    return {"x": x}


@task
def reduce_all(parts: list, scale: int = 1) -> int:
    print("parts", parts)
    return sum((p or {"x": 0})["x"] for p in parts) * scale


@task
def boom():
    raise ValueError("bad input 42")


@task
def huge():
    return "x" * (300 * 1024)


@task
def env_probe(ti=None, params=None, ds=None):
    import os
    return {
        "ctx": os.environ.get("AIRFLOW_CTX_TASK_ID"),
        "try": os.environ.get("AIRFLOW_CTX_TRY_NUMBER"),
        "leak": os.environ.get("LEOFLOW_TEST_SECRET"),
        "var": os.environ.get("AIRFLOW_VAR_COLOR"),
        "ti_task": ti.task_id,
        "pulled": ti.xcom_pull(task_ids="produce"),
        "params": params,
        "ds": ds,
    }


@task
def posonly(a, /, b, **kw):
    return [a, b, kw.get("k")]


@task.bash
def bash_from_fn(word: str) -> str:
    return f"echo from-fn-{word}"


@task(multiple_outputs=True)
def split():
    from airflow.sdk import get_current_context

    return {"a": 1, "run": get_current_context()["run_id"]}


with DAG("exec_dag", schedule=None):
    split()
    p = produce(1)
    reduce_all([p, produce(2)])
    boom()
    huge()
    env_probe()
    posonly(1, 2, k=4)
    bash_from_fn("hi")
"""


class Collector:
    """Collects executor events; waits for a terminal one without sleeping."""

    def __init__(self) -> None:
        self.events: list[TaskEvent] = []
        self._done: dict[TaskKey, asyncio.Event] = {}

    async def __call__(self, event: TaskEvent) -> None:
        self.events.append(event)
        if event.state != "running":
            self._done.setdefault(event.key, asyncio.Event()).set()

    async def wait(self, key: TaskKey, timeout: float = 60) -> TaskEvent:
        await asyncio.wait_for(self._done.setdefault(key, asyncio.Event()).wait(), timeout)
        return [e for e in self.events if e.key == key and e.state != "running"][-1]


@pytest.fixture
def dag_file(tmp_path: Path) -> Path:
    path = tmp_path / "project" / "dag.py"
    path.parent.mkdir()
    path.write_text(DAG_PY)
    return path


WORKER_MODES = {
    "cold": {"warm_workers": 0},
    "prestart": {"warm_workers": 2},
    "fork": {"worker_mode": "fork"},
}


@pytest.fixture(params=sorted(WORKER_MODES))
async def executor(tmp_path: Path, request: pytest.FixtureRequest, dag_file: Path):
    """The same contract under every way of starting a try's process."""
    collector = Collector()
    ex = ProcessExecutor(
        logs_dir=tmp_path / "logs", work_root=tmp_path, **WORKER_MODES[request.param]
    )
    await ex.start(collector)
    if request.param != "cold":
        # Let pre-started workers / the zygote get ready, so the tests exercise them.
        await ex.prewarm(dag_file, sys.executable)
        deadline = asyncio.get_running_loop().time() + 30
        while not _pool_ready(ex, dag_file):
            assert asyncio.get_running_loop().time() < deadline, "workers never got ready"
            await asyncio.sleep(0.02)
    ex.collector = collector  # type: ignore[attr-defined]
    yield ex
    await ex.stop()


def _pool_ready(ex: ProcessExecutor, dag_file: Path) -> bool:
    key = (sys.executable, os.fspath(dag_file))
    return ex.zygotes.ready(*key) is not None or any(w.ready for w in ex.warm.workers(key))


def _job(dag_file: Path, task_id: str, task: dict[str, Any], **kw: Any) -> TaskJob:
    spec = TaskSpec.model_validate({"task_id": task_id, "operator": "PythonOperator", **task})
    key = TaskKey("exec_dag", "manual__1", task_id, -1, kw.pop("try_number", 1))
    return TaskJob(key=key, task=spec, dag_file=dag_file, python=sys.executable, **kw)


def _log_events(tmp_path: Path, key: TaskKey) -> list[dict[str, Any]]:
    path = log_path(
        tmp_path / "logs",
        dag_id=key.dag_id,
        run_id=key.run_id,
        task_id=key.task_id,
        map_index=key.map_index,
        try_number=key.try_number,
    )
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_python_task_gets_literals_and_returns_json(executor, dag_file, tmp_path) -> None:
    job = _job(
        dag_file, "produce", {"type": "python", "callable": "dag:produce", "call_args": {"x": 5}}
    )
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == "success" and event.return_value == {"x": 5}
    assert [e.state for e in executor.collector.events] == ["running", "success"]
    logs = _log_events(tmp_path, job.key)
    assert any(e["event"] == "producing 5" and e["logger"] == "task.stdout" for e in logs)
    assert executor.running() == set()


async def test_fan_in_keeps_declaration_order_and_none_slots(executor, dag_file) -> None:
    task = {
        "type": "python",
        "callable": "dag:reduce_all",
        "upstream": ["produce", "produce__1", "produce__2"],
        "fan_ins": {
            "parts": {
                "shape": "list",
                "slots": [
                    {"ref": {"task_id": "produce__2"}},
                    {"value": {"x": 100}},
                    {"ref": {"task_id": "produce"}},
                    {"ref": {"task_id": "produce__1"}},
                ],
            }
        },
        "call_args": {"scale": 2},
    }
    # produce__1 produced nothing: its slot must arrive as None, the others in slot order.
    xcom = {"produce": {"return_value": {"x": 1}}, "produce__2": {"return_value": {"x": 3}}}
    job = _job(dag_file, "reduce_all", task, xcom=xcom)
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == "success" and event.return_value == (3 + 100 + 1 + 0) * 2


async def test_failure_carries_the_exception_and_logs_the_traceback(
    executor, dag_file, tmp_path
) -> None:
    job = _job(dag_file, "boom", {"type": "python", "callable": "dag:boom"}, try_number=2)
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == "failed" and event.retryable
    assert event.error == "ValueError: bad input 42"
    logs = _log_events(tmp_path, job.key)
    assert any("Traceback" in e["event"] and e["level"] == "error" for e in logs)
    assert logs[-1]["event"].startswith("task failed")


async def test_oversize_return_value_fails_clearly(executor, dag_file) -> None:
    job = _job(dag_file, "huge", {"type": "python", "callable": "dag:huge"})
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == "failed"
    assert "262144 bytes" in (event.error or "") and "reference" in (event.error or "")


async def test_clean_environment_context_and_variables(executor, dag_file) -> None:
    os.environ["LEOFLOW_TEST_SECRET"] = "must-not-leak"
    try:
        job = _job(
            dag_file,
            "env_probe",
            {"type": "python", "callable": "dag:env_probe", "upstream": []},
            env={"AIRFLOW_VAR_COLOR": "blue"},
            xcom={"produce": {"return_value": 7}},
            context={"logical_date": "2024-03-04T05:06:07+00:00", "params": {"n": 3}},
        )
        await executor.submit(job)
        event = await executor.collector.wait(job.key)
    finally:
        del os.environ["LEOFLOW_TEST_SECRET"]
    assert event.state == "success", event.error
    assert event.return_value == {
        "ctx": "env_probe",
        "try": "1",
        "leak": None,
        "var": "blue",
        "ti_task": "env_probe",
        "pulled": 7,
        "params": {"n": 3},
        "ds": "2024-03-04",
    }


async def test_positional_only_and_varargs_are_bound(executor, dag_file) -> None:
    job = _job(
        dag_file,
        "posonly",
        {"type": "python", "callable": "dag:posonly", "call_args": {"a": 1, "b": 2, "k": 4}},
    )
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == "success" and event.return_value == [1, 2, 4]


@pytest.mark.parametrize(
    ("command", "state", "value"),
    [
        ("echo one; echo {{ ds }}-{{ params.n }}", "success", "2024-03-04-3"),
        ("echo skipping; exit 99", "skipped", None),
        ("echo oops >&2; exit 3", "failed", None),
    ],
)
async def test_bash_tasks(executor, dag_file, tmp_path, command, state, value) -> None:
    job = _job(
        dag_file,
        "b",
        {"type": "bash", "operator": "BashOperator", "bash_command": command},
        context={"logical_date": "2024-03-04T00:00:00+00:00", "params": {"n": 3}},
    )
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == state
    assert event.return_value == value
    if state == "failed":
        assert "exit code 3" in (event.error or "")
        assert any(e["event"] == "oops" for e in _log_events(tmp_path, job.key))


async def test_task_bash_function_returns_the_command(executor, dag_file) -> None:
    job = _job(
        dag_file,
        "bash_from_fn",
        {
            "type": "bash",
            "operator": "BashOperator",
            "callable": "dag:bash_from_fn",
            "call_args": {"word": "hi"},
        },
    )
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == "success" and event.return_value == "from-fn-hi"


def _alive(pid: int) -> bool:
    """True while ``pid`` is a live (non-zombie) process; SIGKILL delivery takes a moment."""
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        time.sleep(0.02)
    return True


async def test_timeout_kills_the_whole_process_group(executor, dag_file, tmp_path) -> None:
    pid_file = tmp_path / "child.pid"
    command = f"sleep 300 & echo $! > {pid_file}; wait"
    job = _job(
        dag_file,
        "slow",
        {"type": "bash", "operator": "BashOperator", "bash_command": command},
        timeout_seconds=1.5,
    )
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == "failed" and "execution_timeout of 1.5 s" in (event.error or "")
    assert not _alive(int(pid_file.read_text()))


async def test_background_children_do_not_outlive_a_finished_task(
    executor, dag_file, tmp_path
) -> None:
    pid_file = tmp_path / "bg.pid"
    command = f"(sleep 300 >/dev/null 2>&1 &  echo $! > {pid_file}); echo done"
    job = _job(
        dag_file, "bg", {"type": "bash", "operator": "BashOperator", "bash_command": command}
    )
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == "success" and event.return_value == "done"
    assert not _alive(int(pid_file.read_text()))


async def test_resubmitting_a_running_key_is_a_no_op(executor, dag_file, tmp_path) -> None:
    marker = tmp_path / "runs.txt"
    job = _job(
        dag_file,
        "once",
        {
            "type": "bash",
            "operator": "BashOperator",
            "bash_command": f"echo x >> {marker}; sleep 0.5",
        },
    )
    await executor.submit(job)
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == "success"
    assert marker.read_text() == "x\n"
    assert [e.state for e in executor.collector.events if e.key == job.key] == [
        "running",
        "success",
    ]


async def test_cancel_reports_the_reason(executor, dag_file) -> None:
    job = _job(
        dag_file, "c", {"type": "bash", "operator": "BashOperator", "bash_command": "sleep 300"}
    )
    await executor.submit(job)
    await executor.cancel(job.key, "marked failed by admin")
    event = await executor.collector.wait(job.key)
    assert event.state == "failed" and event.error == "marked failed by admin"


async def test_missing_interpreter_fails_the_try(executor, dag_file, tmp_path) -> None:
    job = TaskJob(
        key=TaskKey("exec_dag", "r", "produce"),
        task=TaskSpec.model_validate(
            {
                "task_id": "produce",
                "type": "python",
                "operator": "PythonOperator",
                "callable": "dag:produce",
            }
        ),
        dag_file=dag_file,
        python=str(tmp_path / "no-such-python"),
    )
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == "failed" and "could not start worker" in (event.error or "")


async def test_multiple_outputs_and_current_context(executor, dag_file) -> None:
    job = _job(dag_file, "split", {"type": "python", "callable": "dag:split"})
    await executor.submit(job)
    event = await executor.collector.wait(job.key)
    assert event.state == "success", event.error
    assert event.return_value == {"a": 1, "run": "manual__1"}
    assert event.xcom == {"a": 1, "run": "manual__1"}
