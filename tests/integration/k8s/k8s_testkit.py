"""Helpers shared by the Kubernetes executor tests (a uniquely named module: test dirs share
sys.path): an event recorder to wait on, a job factory, and reads through the HTTP API.

No real cluster can run on this machine; see ``k8s_standin`` for the emulator and the kubelet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from leoflow.executors.base import TaskEvent, TaskJob, TaskKey
from leoflow.executors.kubernetes import KubernetesExecutor
from leoflow.spec import Placement, Resources, TaskSpec

NAMESPACE = "leoflow-tasks"
AGENT_ADDRESS = "leoflow.leoflow.svc:50051"
WAIT_SECONDS = 20.0


class EventLog:
    """Collects executor events; tests wait on conditions instead of sleeping."""

    def __init__(self) -> None:
        self.events: list[TaskEvent] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: TaskEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def states(self, key: TaskKey) -> list[str]:
        """The states reported for ``key``, in order."""
        return [e.state for e in self.events if e.key == key]

    async def wait_for(self, key: TaskKey, state: str) -> TaskEvent:
        """The first event of ``key`` in ``state`` (waits up to WAIT_SECONDS)."""

        def found() -> TaskEvent | None:
            return next((e for e in self.events if e.key == key and e.state == state), None)

        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: found() is not None), WAIT_SECONDS
            )
        event = found()
        assert event is not None
        return event

    async def wait_terminal(self, key: TaskKey) -> TaskEvent:
        """The terminal event of ``key``."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self._terminal(key) is not None), WAIT_SECONDS
            )
        event = self._terminal(key)
        assert event is not None
        return event

    def _terminal(self, key: TaskKey) -> TaskEvent | None:
        return next((e for e in self.events if e.key == key and e.state != "running"), None)


def make_job(
    task_id: str = "work",
    *,
    image: str | None = "test/ok",
    run_id: str = "manual__2026-11-28T10:00:00+00:00",
    try_number: int = 1,
    map_index: int = -1,
    timeout: float | None = None,
    resources: dict[str, Any] | None = None,
    placement: dict[str, Any] | None = None,
) -> TaskJob:
    """A try of one task of ``k8s_dag`` whose pod runs ``image``."""
    spec = TaskSpec(
        task_id=task_id,
        type="bash",
        operator="BashOperator",
        bash_command="echo hi",
        env={"TASK_LEVEL": "yes"},
        resources=Resources.model_validate(resources) if resources else None,
        placement=Placement.model_validate(placement) if placement else None,
    )
    return TaskJob(
        key=TaskKey("k8s_dag", run_id, task_id, map_index, try_number),
        task=spec,
        dag_file=Path("/opt/leoflow/dag/dag.py"),
        python="/opt/leoflow/venv/bin/python",
        context={"image": image} if image else {},
        env={"LEOFLOW_AGENT_TOKEN": f"token-for-{task_id}-{try_number}"},
        timeout_seconds=timeout,
    )


async def api_pods(api_url: str) -> list[dict[str, Any]]:
    """The task namespace's pods, read through the HTTP API."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{api_url}/api/v1/namespaces/{NAMESPACE}/pods") as resp,
    ):
        assert resp.status == 200
        return (await resp.json())["items"]


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll an observable condition until it holds (bounded by WAIT_SECONDS)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


Factory = Callable[..., Awaitable[tuple[KubernetesExecutor, "EventLog"]]]
