"""Task instances: guarded transitions, races, tries and history, clear semantics, listing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from store_helpers import make_spec

from leoflow.errors import Conflict
from leoflow.store import ALL, DagRunState, InvalidArgument, Store, TaskInstance, TIState

T0 = datetime(2024, 1, 1, tzinfo=UTC)


async def _run(store: Store, *, retries: int = 0, edges=None, run_id: str = "r1", day: int = 0):
    await store.register_version("default", make_spec(edges=edges, retries=retries))
    run = await store.create_run(
        "default", "etl", run_id=run_id, logical_date=T0 + timedelta(days=day)
    )
    tis = {t.task_id: t for t in await store.list_run_tis([run.id])}
    return run, tis


async def _drive(store: Store, ti: TaskInstance, *states: str) -> None:
    for state in states:
        assert await store.transition_ti(ti.id, state), state


async def test_transitions_stamp_times_and_count_tries(store: Store) -> None:
    _, tis = await _run(store)
    a = tis["a"]
    assert a.state is None and a.try_number == 0
    await _drive(store, a, "scheduled", "queued")
    assert await store.transition_ti(a.id, "running", hostname="h1", pid=42, executor="process")
    got = await store.get_ti_by_id(a.id)
    assert got.try_number == 1 and got.hostname == "h1" and got.pid == 42
    assert got.scheduled_dttm and got.queued_dttm and got.start_date and got.last_heartbeat_at
    await _drive(store, a, "success")
    got = await store.get_ti_by_id(a.id)
    assert got.state is TIState.SUCCESS and got.end_date >= got.start_date
    assert got.duration is not None and got.duration >= 0


async def test_stale_expected_state_does_not_overwrite(store: Store) -> None:
    _, tis = await _run(store)
    a = tis["a"]
    await _drive(store, a, "scheduled", "queued", "running", "success")
    # A late "failed" report of the running try must not overwrite success.
    assert not await store.transition_ti(a.id, "failed", expected=["running"])
    assert not await store.transition_ti(a.id, "failed")
    assert (await store.get_ti_by_id(a.id)).state is TIState.SUCCESS
    with pytest.raises(InvalidArgument, match="cannot move"):
        await store.transition_ti(a.id, "failed", expected=["success"])


async def test_report_of_an_old_try_is_ignored(store: Store) -> None:
    _, tis = await _run(store, retries=2)
    a = tis["a"]
    await _drive(store, a, "scheduled", "queued", "running")
    assert await store.transition_ti(a.id, "up_for_retry", try_number=1)
    await _drive(store, a, "scheduled", "queued", "running")
    assert not await store.transition_ti(a.id, "success", try_number=1)
    assert await store.transition_ti(a.id, "success", try_number=2)


async def test_two_concurrent_updaters_exactly_one_wins(store: Store) -> None:
    _, tis = await _run(store)
    a = tis["a"]
    await _drive(store, a, "scheduled", "queued", "running")
    for _ in range(5):
        results = await asyncio.gather(
            store.transition_ti(a.id, "success", expected=["running"]),
            store.transition_ti(a.id, "failed", expected=["running"]),
        )
        assert sorted(results) == [False, True]
        final = (await store.get_ti_by_id(a.id)).state
        assert final is (TIState.SUCCESS if results[0] else TIState.FAILED)
        await store.clear_tis("default", "etl", run_id="r1", task_ids=["a"], only_failed=False)
        await _drive(store, a, "scheduled", "queued", "running")


async def test_bulk_transition_returns_only_changed_ids(store: Store) -> None:
    _, tis = await _run(store)
    await _drive(store, tis["a"], "scheduled")
    changed = await store.transition_tis(
        [t.id for t in tis.values()], TIState.SCHEDULED, expected=[None]
    )
    assert set(changed) == {tis["b"].id, tis["c"].id}
    assert await store.transition_tis([], TIState.QUEUED) == []


async def test_retry_history_and_tries(store: Store) -> None:
    run, tis = await _run(store, retries=1)
    a = tis["a"]
    await _drive(store, a, "scheduled", "queued", "running")
    retry_at = T0 + timedelta(minutes=5)
    assert await store.transition_ti(a.id, "up_for_retry", next_retry_at=retry_at)
    assert (await store.get_ti_by_id(a.id)).next_retry_at == retry_at
    await _drive(store, a, "scheduled", "queued", "running", "success")
    tries = await store.list_ti_tries("default", "etl", run.run_id, "a")
    assert [(t.try_number, t.state) for t in tries] == [
        (1, TIState.FAILED),
        (2, TIState.SUCCESS),
    ]
    assert (await store.get_ti_try("default", "etl", run.run_id, "a", 2)).state is TIState.SUCCESS


async def test_clear_preserves_history_and_counts_next_try(store: Store) -> None:
    run, tis = await _run(store)
    for ti in tis.values():
        await _drive(store, ti, "scheduled", "queued", "running")
    await _drive(store, tis["a"], "success")
    await _drive(store, tis["b"], "failed")
    await store.transition_run(run.id, DagRunState.RUNNING)
    await store.transition_run(run.id, DagRunState.FAILED)
    # only_failed (the default) picks b; include_downstream adds c, which is still running.
    dry = await store.clear_tis("default", "etl", run_id="r1", task_ids=["b"], dry_run=True)
    assert [t.task_id for t in dry] == ["b"]
    cleared = await store.clear_tis(
        "default", "etl", run_id="r1", task_ids=["b"], only_failed=False, include_downstream=True
    )
    by_id = {t.task_id: t for t in cleared}
    assert set(by_id) == {"b", "c"}
    assert by_id["b"].state is None and by_id["b"].try_number == 1
    assert by_id["b"].max_tries == 1 and by_id["b"].start_date is None
    assert by_id["c"].state is TIState.RESTARTING
    assert (await store.get_ti_by_id(tis["a"].id)).state is TIState.SUCCESS
    run_after = await store.get_run_by_id(run.id)
    assert run_after.state is DagRunState.QUEUED and run_after.clear_number == 1
    assert run_after.end_date is None
    await _drive(store, tis["b"], "scheduled", "queued", "running", "success")
    tries = await store.list_ti_tries("default", "etl", "r1", "b")
    assert [(t.try_number, t.state) for t in tries] == [(1, TIState.FAILED), (2, TIState.SUCCESS)]
    c_tries = await store.list_ti_tries("default", "etl", "r1", "c")
    assert [(t.try_number, t.state) for t in c_tries] == [(1, TIState.FAILED)]


async def test_clear_upstream_only_failed_and_past(store: Store) -> None:
    await _run(store, run_id="r1", day=0)
    run2 = await store.create_run("default", "etl", run_id="r2", logical_date=T0 + timedelta(1))
    for run_pk in (1, run2.id):
        for ti in await store.list_run_tis([run_pk]):
            await _drive(store, ti, "scheduled", "queued", "running", "failed")
    up = await store.clear_tis(
        "default", "etl", run_id="r2", task_ids=["b"], include_upstream=True, dry_run=True
    )
    assert sorted(t.task_id for t in up) == ["a", "b"]
    past = await store.clear_tis(
        "default", "etl", run_id="r2", task_ids=["c"], include_past=True, dry_run=True
    )
    assert sorted(t.run_id for t in past) == ["r1", "r2"]
    none = await store.clear_tis(
        "default", "etl", run_id="r2", only_running=True, dry_run=True, only_failed=False
    )
    assert none == []
    all_failed = await store.clear_tis("default", "etl", run_id="r2", reset_dag_runs=False)
    assert len(all_failed) == 3
    assert (await store.get_run_by_id(run2.id)).clear_number == 0


async def test_clear_run_on_latest_version(store: Store) -> None:
    run, tis = await _run(store, edges={"a": []})
    await _drive(store, tis["a"], "scheduled", "queued", "running", "failed")
    v2, _ = await store.register_version("default", make_spec(edges={"a": [], "z": ["a"]}))
    await store.clear_run("default", "etl", "r1", run_on_latest_version=True)
    got = await store.get_run_by_id(run.id)
    assert got.dag_version_id == v2.id
    assert sorted(t.task_id for t in await store.list_run_tis([run.id])) == ["a", "z"]


async def test_heartbeat_only_for_the_running_try(store: Store) -> None:
    _, tis = await _run(store)
    a = tis["a"]
    assert not await store.heartbeat_ti(a.id, 1)
    await _drive(store, a, "scheduled", "queued", "running")
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert await store.heartbeat_ti(a.id, 1, now=later)
    assert not await store.heartbeat_ti(a.id, 2)
    assert (await store.get_ti_by_id(a.id)).last_heartbeat_at == later
    stale = await store.list_stale_running_tis(later + timedelta(seconds=1))
    assert [t.id for t in stale] == [a.id]
    assert await store.list_stale_running_tis(later) == []


async def test_patch_ti_marks_and_notes(store: Store) -> None:
    run, _ = await _run(store)
    ti = await store.patch_ti("default", "etl", run.run_id, "b", state=TIState.SUCCESS, note="ok")
    assert ti.state is TIState.SUCCESS and ti.note == "ok"
    ti = await store.patch_ti("default", "etl", run.run_id, "b", note=None)
    assert ti.note is None and ti.state is TIState.SUCCESS
    with pytest.raises(InvalidArgument):
        await store.patch_ti("default", "etl", run.run_id, "b", state=TIState.RUNNING)


async def _wait_for_lock_waiter(store: Store) -> None:
    """Return once some backend of this database is waiting for a row lock."""
    for _ in range(500):
        waiting = await store.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second writer never blocked on the row lock")


async def test_patch_ti_lost_race_is_conflict(store: Store) -> None:
    run, tis = await _run(store)
    async with store.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        # Another writer changes the row first (uncommitted, so it holds the row lock)...
        await conn.execute(
            "UPDATE task_instances SET state = 'scheduled' WHERE id = $1", tis["a"].id
        )
        # ...while the user marks it from the state they saw (no status).
        mark = asyncio.create_task(
            store.patch_ti("default", "etl", run.run_id, "a", state=TIState.FAILED)
        )
        await _wait_for_lock_waiter(store)
        await tx.commit()
    with pytest.raises(Conflict, match="changed state meanwhile"):
        await mark
    assert (await store.get_ti_by_id(tis["a"].id)).state is TIState.SCHEDULED


async def test_list_tis_filters_and_wildcards(store: Store) -> None:
    _, tis = await _run(store)
    await _drive(store, tis["a"], "scheduled", "queued", "running", "success")
    page = await store.list_tis("default", ALL, ALL)
    assert page.total == 3
    assert (await store.list_tis("default", "etl", "r1", states=[None])).total == 2
    mixed = await store.list_tis("default", states=[None, TIState.SUCCESS], order_by="-task_id")
    assert [t.task_id for t in mixed.items] == ["c", "b", "a"]
    assert (await store.list_tis("default", task_ids=["a", "c"])).total == 2
    assert (await store.list_tis("default", pools=["default_pool"], limit=1)).total == 3
    assert (await store.list_tis("default", duration_gte=0)).total == 1
    with pytest.raises(InvalidArgument):
        await store.list_tis("default", order_by="nope")


async def test_mapped_expansion(store: Store) -> None:
    run, _ = await _run(store)
    mapped = await store.expand_mapped_ti(run.id, "b", 3)
    assert [t.map_index for t in mapped] == [0, 1, 2]
    assert [t.map_index for t in await store.expand_mapped_ti(run.id, "b", 3)] == [0, 1, 2]
    assert len(await store.create_task_instances(run.id)) == 0
    skipped = await store.expand_mapped_ti(run.id, "c", 0)
    assert [(t.map_index, t.state) for t in skipped] == [(-1, TIState.SKIPPED)]
    one = await store.get_ti("default", "etl", "r1", "b", 2)
    assert one.map_index == 2


async def test_requeue_after_executor_refusal_is_not_a_new_try(store: Store) -> None:
    _, tis = await _run(store)
    a = tis["a"]
    await _drive(store, a, "scheduled", "queued")
    assert await store.transition_ti(a.id, "scheduled", expected=["queued"])
    await _drive(store, a, "queued", "running")
    assert (await store.get_ti_by_id(a.id)).try_number == 1


@pytest.mark.parametrize("verdict", ["skipped", "upstream_failed"])
async def test_a_waiting_retry_can_be_settled_by_its_trigger_rule(
    store: Store, verdict: str
) -> None:
    # The decision core re-checks a ready retry's trigger rule (an upstream may have been
    # cleared meanwhile) and may skip it or fail it upstream from up_for_retry.
    _, tis = await _run(store, retries=1)
    a = tis["a"]
    await _drive(store, a, "scheduled", "queued", "running", "up_for_retry")
    assert await store.transition_ti(a.id, verdict, expected=[TIState.UP_FOR_RETRY])
    assert (await store.get_ti_by_id(a.id)).state == verdict
