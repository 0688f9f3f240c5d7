"""DAG runs: creation and pinning, listing across DAGs, marking, deleting, guarded transitions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from store_helpers import make_spec

from leoflow.errors import Conflict, NotFound
from leoflow.store import ALL, DagRunState, DagRunType, InvalidArgument, Store, TIState

T0 = datetime(2024, 1, 1, tzinfo=UTC)


async def test_run_defaults_follow_airflow(store: Store) -> None:
    await store.register_version("default", make_spec())
    run = await store.create_run("default", "etl", logical_date=T0, conf={"x": 1}, note="hi")
    assert run.run_id == "manual__2024-01-01T00:00:00+00:00"
    assert run.state is DagRunState.QUEUED and run.run_type is DagRunType.MANUAL
    assert run.data_interval_start == run.data_interval_end == T0 == run.run_after
    assert run.conf == {"x": 1} and run.note == "hi" and run.queued_at is not None
    later = T0 + timedelta(hours=1)
    no_date = await store.create_run("default", "etl", logical_date=None, run_after=later)
    assert no_date.logical_date is None and no_date.run_id == f"manual__{later.isoformat()}"
    assert no_date.data_interval_start is None and no_date.run_after == later
    with pytest.raises(Conflict, match="already exists"):
        await store.create_run("default", "etl", run_id=run.run_id, logical_date=None)
    with pytest.raises(NotFound):
        await store.create_run("default", "nope")
    with pytest.raises(InvalidArgument):
        await store.create_run("default", "etl", run_id="r", conf=[1, 2])  # type: ignore[arg-type]


async def test_run_is_pinned_to_its_version(store: Store) -> None:
    v1, _ = await store.register_version("default", make_spec(edges={"a": [], "b": ["a"]}))
    run = await store.create_run("default", "etl", run_id="r1")
    v2, _ = await store.register_version("default", make_spec(edges={"x": []}))
    assert (await store.get_dag("default", "etl")).current_version_id == v2.id
    got = await store.get_run("default", "etl", "r1")
    assert got.dag_version_id == v1.id and got.version_number == 1
    assert [t.task_id for t in await store.list_run_tis([run.id])] == ["a", "b"]
    run2 = await store.create_run("default", "etl", run_id="r2")
    assert run2.dag_version_id == v2.id
    assert [t.task_id for t in await store.list_run_tis([run2.id])] == ["x"]
    old = await store.create_run("default", "etl", run_id="r3", dag_version_id=v1.id)
    assert old.version_number == 1


async def _runs(store: Store) -> None:
    for dag_id in ("alpha", "beta"):
        await store.register_version("default", make_spec(dag_id))
        for i in range(3):
            await store.create_run(
                "default", dag_id, run_id=f"{dag_id}_{i}", logical_date=T0 + timedelta(days=i)
            )


async def test_list_runs_across_dags_with_filters(store: Store) -> None:
    await _runs(store)
    everything = await store.list_runs("default", ALL)
    assert everything.total == 6
    assert (await store.list_runs("default", "beta")).total == 3
    with pytest.raises(NotFound):
        await store.list_runs("default", "gamma")
    page = await store.list_runs("default", ALL, order_by="-logical_date,dag_id", limit=2)
    assert [r.run_id for r in page.items] == ["alpha_2", "beta_2"] and page.total == 6
    window = await store.list_runs(
        "default",
        ALL,
        logical_date_gte=T0 + timedelta(days=1),
        logical_date_lte=T0 + timedelta(days=1),
    )
    assert sorted(r.run_id for r in window.items) == ["alpha_1", "beta_1"]
    await store.patch_run("default", "alpha", "alpha_0", state=DagRunState.FAILED)
    failed = await store.list_runs("default", ALL, states=[DagRunState.FAILED])
    assert [r.run_id for r in failed.items] == ["alpha_0"]
    assert (await store.list_runs("default", ALL, dag_ids=["beta"], run_id_pattern="_1")).total == 1


async def test_mark_run_success_and_failed_finishes_task_instances(store: Store) -> None:
    await store.register_version("default", make_spec())
    run = await store.create_run("default", "etl")
    a, _b, _c = await store.list_run_tis([run.id])
    for state in ("scheduled", "queued", "running"):
        assert await store.transition_ti(a.id, state)
    marked = await store.patch_run("default", "etl", run.run_id, state=DagRunState.FAILED, note="n")
    assert marked.state is DagRunState.FAILED and marked.end_date is not None and marked.note == "n"
    states = {t.task_id: t.state for t in await store.list_run_tis([run.id])}
    assert states == {"a": TIState.FAILED, "b": TIState.SKIPPED, "c": TIState.SKIPPED}
    await store.patch_run("default", "etl", run.run_id, state=DagRunState.SUCCESS)
    states = {t.task_id: t.state for t in await store.list_run_tis([run.id])}
    assert states == {"a": TIState.FAILED, "b": TIState.SKIPPED, "c": TIState.SKIPPED}
    requeued = await store.patch_run("default", "etl", run.run_id, state=DagRunState.QUEUED)
    assert requeued.state is DagRunState.QUEUED and requeued.end_date is None
    with pytest.raises(InvalidArgument):
        await store.patch_run("default", "etl", run.run_id, state=DagRunState.RUNNING)


async def test_transition_run_is_guarded(store: Store) -> None:
    await store.register_version("default", make_spec())
    run = await store.create_run("default", "etl")
    assert await store.transition_run(run.id, DagRunState.RUNNING, expected=[DagRunState.QUEUED])
    assert not await store.transition_run(
        run.id, DagRunState.RUNNING, expected=[DagRunState.QUEUED]
    )
    got = await store.get_run_by_id(run.id)
    assert got.state is DagRunState.RUNNING and got.start_date is not None
    results = await asyncio.gather(
        store.transition_run(run.id, DagRunState.SUCCESS, expected=[DagRunState.RUNNING]),
        store.transition_run(run.id, DagRunState.FAILED, expected=[DagRunState.RUNNING]),
    )
    assert sorted(results) == [False, True]
    with pytest.raises(InvalidArgument):
        await store.transition_run(run.id, DagRunState.RUNNING, expected=[DagRunState.SUCCESS])
    assert [r.id for r in await store.list_active_runs()] == []


async def test_active_runs_and_counts(store: Store) -> None:
    await _runs(store)
    active = await store.list_active_runs()
    assert len(active) == 6
    await store.transition_run(active[0].id, DagRunState.RUNNING)
    dag_pk = (await store.get_dag("default", active[0].dag_id)).id
    assert (await store.count_active_runs([dag_pk]))[dag_pk] == 1
    assert len(await store.list_active_runs(states=[DagRunState.RUNNING])) == 1


async def test_delete_run(store: Store) -> None:
    await store.register_version("default", make_spec())
    run = await store.create_run("default", "etl", run_id="r")
    await store.delete_run("default", "etl", "r")
    assert await store.list_run_tis([run.id]) == []
    with pytest.raises(NotFound):
        await store.delete_run("default", "etl", "r")


async def test_transaction_rolls_back_everything(store: Store) -> None:
    await store.register_version("default", make_spec())
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.create_run("default", "etl", run_id="doomed")
            await tx.add_audit("default", "trigger", run_id="doomed")
            raise RuntimeError("boom")
    assert (await store.list_runs("default", "etl")).total == 0
    assert (await store.list_audit("default")).total == 0
    async with store.transaction() as tx:
        await tx.create_run("default", "etl", run_id="kept")
    assert (await store.list_runs("default", "etl")).total == 1


async def test_scheduler_is_notified_of_new_runs_and_finished_tries(store: Store) -> None:
    await store.register_version("default", make_spec())
    listener = await store.listen()
    try:
        run = await store.create_run("default", "etl")
        assert await asyncio.wait_for(listener.get(), 10) == f"run:{run.id}"
        a = (await store.list_run_tis([run.id]))[0]
        for state in ("scheduled", "queued", "running"):
            await store.transition_ti(a.id, state)
        await store.transition_ti(a.id, "success")
        assert await asyncio.wait_for(listener.get(), 10) == f"ti:{run.id}"
        assert listener.drain() == []
    finally:
        await listener.close()


async def test_concurrent_triggers_with_one_run_id_create_one_run(store: Store) -> None:
    await store.register_version("default", make_spec())
    results = await asyncio.gather(
        *(store.create_run("default", "etl", run_id="same", logical_date=None) for _ in range(4)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    run = await store.get_run("default", "etl", "same")
    assert len(await store.list_run_tis([run.id])) == 3
