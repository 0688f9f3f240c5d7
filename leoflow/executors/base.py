"""The executor interface: hand a task try to a worker, hear back what became of it.

An executor never decides anything. The scheduler queues a task instance in the store, then
calls ``submit`` with a ``TaskJob``; the executor starts a fresh, isolated worker and reports
``TaskEvent``s (running, then exactly one terminal event) through the callback it was started
with. Submitting the same ``TaskKey`` twice while it runs is a no-op, so the scheduler may re-send
a queued task after a restart without running it twice.

Backends: ``process`` (a fresh process in the DAG's venv, Lite), ``kubernetes`` (a pod per try,
Pro), ``inline`` (HTTP calls inside the control plane).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from leoflow.spec import TaskSpec


@dataclass(frozen=True, order=True)
class TaskKey:
    """Identifies one try of one task instance (Airflow's TaskInstanceKey)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1


@dataclass(frozen=True)
class TaskJob:
    """Everything a worker needs to run one task try; built by the scheduler from the store."""

    key: TaskKey
    task: TaskSpec
    dag_file: Path
    python: str
    xcom: dict[str, dict[str, Any]] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float | None = None
    tenant: str = "default"


EventState = Literal["running", "success", "failed", "skipped"]


@dataclass(frozen=True)
class TaskEvent:
    """What happened to a submitted try."""

    key: TaskKey
    state: EventState
    at: datetime
    return_value: Any = None
    has_return_value: bool = False
    xcom: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    retryable: bool = True
    pid: int | None = None
    hostname: str | None = None
    executor: str | None = None  # the backend that ran it, when a router hides it


EventCallback = Callable[[TaskEvent], Awaitable[None]]


class Executor(abc.ABC):
    """One interface, several backends (process, kubernetes, inline)."""

    name: str = "base"

    @abc.abstractmethod
    async def start(self, on_event: EventCallback) -> None:
        """Begin accepting jobs; events are delivered through ``on_event``."""

    @abc.abstractmethod
    async def submit(self, job: TaskJob) -> None:
        """Start a worker for ``job`` (no-op when that key already runs)."""

    @abc.abstractmethod
    async def cancel(self, key: TaskKey, reason: str) -> None:
        """Stop the worker of ``key``; a terminal ``failed`` event follows."""

    async def prewarm(self, dag_file: Path, python: str) -> None:  # noqa: B027
        """Get ready for tries of this DAG file (optional: pre-started workers)."""

    @abc.abstractmethod
    def running(self) -> set[TaskKey]:
        """Keys whose worker is alive right now."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop every worker this executor started and release its resources."""
