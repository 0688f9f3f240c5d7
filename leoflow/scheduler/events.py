"""Recording what a worker reported: one guarded transition plus the try's XCom values.

Shared by every path a report arrives on: the scheduler's executor callback (process executor)
and the agent service (gRPC, Pro), so a report means the same thing whichever replica hears it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from uuid import UUID

import jsonschema

from leoflow.errors import LeoflowError
from leoflow.executors.base import TaskEvent, TaskKey
from leoflow.logs import log_path
from leoflow.scheduler.retries import failure_outcome_for
from leoflow.scheduler.states import TaskInstanceState as STI
from leoflow.spec import TaskSpec
from leoflow.store.api import TIState
from leoflow.store.redis_store import RedisStore
from leoflow.store.store import Store


async def record_task_event(
    store: Store,
    redis: RedisStore,
    event: TaskEvent,
    *,
    tenant: str,
    ti_id: UUID,
    task: TaskSpec,
    logs_dir: Path,
    executor_name: str,
) -> bool:
    """Apply one worker report as a guarded transition; False when it lost a race (stale)."""
    key, now = event.key, event.at
    if event.state == "running":
        return await store.transition_ti(
            ti_id,
            TIState.RUNNING,
            expected=[TIState.QUEUED],
            try_number=key.try_number,
            now=now,
            hostname=event.hostname,
            pid=event.pid,
            executor=event.executor or executor_name,
        )
    state = event.state
    if state == "success":
        error = await store_outputs(store, redis, event, tenant=tenant, ti_id=ti_id, task=task)
        if error:
            state = "failed"
            append_log_line(logs_dir, tenant, key, error, at=now)
    next_retry_at = None
    if state == "success":
        target = TIState.SUCCESS
    elif state == "skipped":
        target = TIState.SKIPPED
    else:
        ti = await store.get_ti_by_id(ti_id)
        outcome = failure_outcome_for(
            task,
            try_number=key.try_number,
            max_tries=ti.max_tries,
            end_date=now,
            logical_date=ti.logical_date,
            dag_id=key.dag_id,
        )
        retry = event.retryable and outcome.state is STI.UP_FOR_RETRY
        target = TIState.UP_FOR_RETRY if retry else TIState.FAILED
        next_retry_at = outcome.next_retry_at if retry else None
    return await store.transition_ti(
        ti_id,
        target,
        expected=[TIState.RUNNING, TIState.QUEUED],
        try_number=key.try_number,
        now=now,
        next_retry_at=next_retry_at,
    )


async def store_outputs(
    store: Store, redis: RedisStore, event: TaskEvent, *, tenant: str, ti_id: UUID, task: TaskSpec
) -> str | None:
    """Validate and store a try's XCom values; an error message means the try must fail."""
    values = dict(event.xcom)
    if event.has_return_value:
        problem = check_output_schema(task, event.return_value)
        if problem:
            return problem
        values["return_value"] = event.return_value
    key = event.key
    for name, value in values.items():
        try:
            size = await redis.set_xcom(
                tenant, key.dag_id, key.run_id, key.task_id, name, value, map_index=key.map_index
            )
        except LeoflowError as exc:
            return f"XCom {name!r} refused: {exc.message}"
        await store.upsert_xcom(ti_id, name, size, now=event.at)
    return None


def check_output_schema(task: TaskSpec, value: object) -> str | None:
    """The violation of the task's output_schema by ``value``, or None when it conforms."""
    if task.output_schema is None:
        return None
    try:
        jsonschema.validate(value, task.output_schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(the value)"
        return f"return value does not match output_schema at {where}: {exc.message}"
    return None


def append_log_line(
    logs_dir: Path, tenant: str, key: TaskKey, message: str, *, at: datetime
) -> None:
    """Add one error line from the control plane to a try's log file."""
    path = log_path(
        logs_dir,
        dag_id=key.dag_id,
        run_id=key.run_id,
        task_id=key.task_id,
        map_index=key.map_index,
        try_number=key.try_number,
        tenant=tenant,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"timestamp": at.isoformat(), "level": "error", "event": message, "logger": "leoflow"}
    with path.open("a", encoding="utf-8") as sink:
        sink.write(json.dumps(line) + "\n")
