"""Seeding helpers for the private-API tests: specs, runs driven through real store transitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from leoflow.spec import DagSpec, finalize
from leoflow.store import RedisStore, Store
from leoflow.store.api import DagRun, DagRunState, Role, TIState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class UiApi:
    """One test's app, tenant and per-role tokens."""

    http: httpx.AsyncClient
    app: Any
    store: Store
    redis: RedisStore
    tenant: str
    tokens: dict[Role, str]

    async def get(self, path: str, role: Role | None = Role.VIEWER, **kw: Any) -> httpx.Response:
        """GET as the tenant's user of ``role`` (None: anonymous)."""
        headers = {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}
        return await self.http.get(path, headers=headers, **kw)

    async def post(self, path: str, role: Role = Role.ADMIN, **kw: Any) -> httpx.Response:
        """POST as the tenant's user of ``role``."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return await self.http.request("POST", path, headers=headers, **kw)

    async def request(
        self, method: str, path: str, role: Role = Role.ADMIN, **kw: Any
    ) -> httpx.Response:
        """Any method as the tenant's user of ``role``."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return await self.http.request(method, path, headers=headers, **kw)


def chain_spec(
    dag_id: str,
    n_tasks: int = 3,
    *,
    group_every: int = 0,
    tags: list[str] | None = None,
    source: str = "# dag.py\n",
) -> DagSpec:
    """``t000 >> t001 >> ...``; with ``group_every=k`` tasks sit in groups ``g0, g1...`` of k."""
    tasks = []
    for i in range(n_tasks):
        group = f"g{i // group_every}" if group_every else None
        task_id = f"{group}.t{i:03d}" if group else f"t{i:03d}"
        task: dict[str, Any] = {
            "task_id": task_id,
            "type": "bash",
            "operator": "BashOperator",
            "bash_command": "echo hi",
            "task_group": group,
        }
        if tasks:
            task["upstream"] = [tasks[-1]["task_id"]]
        tasks.append(task)
    body = {"dag_id": dag_id, "tags": tags or [], "source": source, "tasks": tasks}
    return finalize(DagSpec.model_validate(body))


async def run_dag(
    store: Store,
    tenant: str,
    dag_id: str,
    run_id: str,
    *,
    fail: set[str] = frozenset(),  # type: ignore[assignment]
    finish: bool = True,
    after: datetime = T0,
) -> DagRun:
    """Create a run and drive every TI through scheduled, queued, running to success or failed.

    Tasks after a failed one become upstream_failed; with ``finish=False`` the first task is
    left running and the run stays running.
    """
    run = await store.create_run(tenant, dag_id, run_id=run_id, logical_date=after, now=after)
    await store.transition_run(run.id, DagRunState.RUNNING, now=after)
    tis = sorted((await store.list_tis(tenant, dag_id, run_id, limit=10_000)).items,
                 key=lambda ti: ti.task_id)  # fmt: skip
    failed = False
    for n, ti in enumerate(tis):
        at = after + timedelta(seconds=n)
        if failed:
            await store.transition_ti(ti.id, TIState.UPSTREAM_FAILED, now=at)
            continue
        for state in (TIState.SCHEDULED, TIState.QUEUED, TIState.RUNNING):
            assert await store.transition_ti(ti.id, state, now=at)
        if not finish:
            return await store.get_run(tenant, dag_id, run_id)
        end = TIState.FAILED if ti.task_id in fail else TIState.SUCCESS
        assert await store.transition_ti(ti.id, end, now=at + timedelta(milliseconds=500))
        failed = failed or end is TIState.FAILED
    final = DagRunState.FAILED if failed else DagRunState.SUCCESS
    await store.transition_run(run.id, final, now=after + timedelta(seconds=len(tis)))
    return await store.get_run(tenant, dag_id, run_id)
