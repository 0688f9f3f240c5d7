"""DAG registration (dedup, numbering, current version), listing, patching, deleting."""

from __future__ import annotations

import asyncio

import pytest
from store_helpers import make_spec

from leoflow.errors import Conflict, NotFound, SpecError
from leoflow.store import ALL, InvalidArgument, Store

SQLISH = "x'); DROP TABLE dags; --"


async def test_register_dedups_by_content_hash(store: Store) -> None:
    v1, created = await store.register_version("default", make_spec(), created_by="alice")
    assert created and v1.version_number == 1 and v1.created_by == "alice"
    same, created_again = await store.register_version("default", make_spec())
    assert not created_again
    assert same.id == v1.id and same.version_number == 1
    page = await store.list_dag_versions("default", "etl")
    assert page.total == 1


async def test_version_numbers_and_repush_of_older_spec_makes_it_current(store: Store) -> None:
    spec1 = make_spec(description="one")
    spec2 = make_spec(description="two")
    v1, _ = await store.register_version("default", spec1)
    v2, created = await store.register_version("default", spec2)
    assert created and v2.version_number == 2
    assert (await store.get_dag("default", "etl")).description == "two"
    back, created = await store.register_version("default", spec1)
    assert not created and back.id == v1.id
    dag = await store.get_dag("default", "etl")
    assert dag.current_version_id == v1.id
    assert dag.current_version_number == 1
    assert dag.description == "one"
    versions = await store.list_dag_versions("default", "etl", order_by="-version_number")
    assert [v.version_number for v in versions.items] == [2, 1]


async def test_concurrent_registration_of_new_versions_numbers_them_uniquely(store: Store) -> None:
    specs = [make_spec(description=f"d{i}") for i in range(5)]
    results = await asyncio.gather(*(store.register_version("default", s) for s in specs))
    assert sorted(v.version_number for v, _ in results) == [1, 2, 3, 4, 5]
    assert all(created for _, created in results)


async def test_tampered_hash_is_refused(store: Store) -> None:
    spec = make_spec().model_copy(update={"description": "edited"})
    with pytest.raises(SpecError, match="content_hash"):
        await store.register_version("default", spec)


async def test_spec_and_source_round_trip(store: Store) -> None:
    spec = make_spec()
    version, _ = await store.register_version("default", spec)
    assert await store.get_spec(version.id) == spec
    source = await store.get_dag_source("default", "etl")
    assert source.content == "# etl\n" and source.version_number == 1
    assert (await store.get_dag_version("default", "etl", 1)).content_hash == spec.content_hash
    with pytest.raises(NotFound):
        await store.get_dag_version("default", "etl", 7)


async def _register_many(store: Store) -> None:
    for i in range(12):
        await store.register_version(
            "default",
            make_spec(
                f"dag_{i:02d}",
                tags=["even" if i % 2 == 0 else "odd", *(["three"] if i % 3 == 0 else [])],
                owner="alice" if i < 6 else "bob",
            ),
        )


async def test_list_dags_filters_pagination_and_total(store: Store) -> None:
    await _register_many(store)
    page = await store.list_dags("default", limit=5, offset=0)
    assert page.total == 12 and [d.dag_id for d in page.items][:2] == ["dag_00", "dag_01"]
    last = await store.list_dags("default", limit=5, offset=10)
    assert [d.dag_id for d in last.items] == ["dag_10", "dag_11"] and last.total == 12
    beyond = await store.list_dags("default", limit=5, offset=50)
    assert beyond.items == [] and beyond.total == 12
    assert (await store.list_dags("default", tags=["odd"])).total == 6
    both = await store.list_dags("default", tags=["even", "three"], tags_match_mode="all")
    assert [d.dag_id for d in both.items] == ["dag_00", "dag_06"]
    assert (await store.list_dags("default", owners=["bob"])).total == 6
    assert [d.dag_id for d in (await store.list_dags("default", dag_id_pattern="g_1")).items] == [
        "dag_10",
        "dag_11",
    ]
    desc = await store.list_dags("default", order_by="-dag_id", limit=1)
    assert desc.items[0].dag_id == "dag_11"
    with pytest.raises(InvalidArgument) as err:
        await store.list_dags("default", order_by="dag_id; DROP TABLE dags")
    assert err.value.field == "order_by"


async def test_patch_pause_and_bulk_pause(store: Store) -> None:
    await _register_many(store)
    dag = await store.patch_dag("default", "dag_03", is_paused=True)
    assert dag.is_paused
    assert [d.dag_id for d in (await store.list_dags("default", paused=True)).items] == ["dag_03"]
    changed = await store.patch_dags("default", is_paused=True, dag_id_pattern="dag_1")
    assert [d.dag_id for d in changed] == ["dag_10", "dag_11"]
    assert (await store.list_dags("default", paused=True)).total == 3
    with pytest.raises(NotFound):
        await store.patch_dag("default", "missing", is_paused=True)


async def test_tags_listing(store: Store) -> None:
    await _register_many(store)
    tags = await store.list_dag_tags("default")
    assert tags.items == ["even", "odd", "three"] and tags.total == 3
    assert (await store.list_dag_tags("default", pattern="th")).items == ["three"]


async def test_delete_dag_cascades_and_refuses_running(store: Store) -> None:
    await store.register_version("default", make_spec())
    run = await store.create_run("default", "etl")
    tis = await store.list_run_tis([run.id])
    await store.transition_ti(tis[0].id, "scheduled")
    await store.transition_ti(tis[0].id, "queued")
    await store.transition_ti(tis[0].id, "running")
    with pytest.raises(Conflict, match="running"):
        await store.delete_dag("default", "etl")
    await store.transition_ti(tis[0].id, "success")
    await store.delete_dag("default", "etl")
    with pytest.raises(NotFound):
        await store.get_dag("default", "etl")
    with pytest.raises(NotFound):
        await store.get_run_by_id(run.id)
    with pytest.raises(NotFound):
        await store.delete_dag("default", "etl")


async def test_tenants_are_isolated(store: Store) -> None:
    await store.create_tenant("acme")
    await store.register_version("acme", make_spec())
    assert (await store.list_dags("default")).total == 0
    assert (await store.list_dags("acme")).total == 1
    with pytest.raises(NotFound):
        await store.get_dag("default", "etl")
    with pytest.raises(NotFound, match="tenant"):
        await store.list_dags("nobody")


async def test_sqlish_strings_are_harmless(store: Store) -> None:
    await store.register_version("default", make_spec())
    with pytest.raises(NotFound):
        await store.get_dag("default", SQLISH)
    assert (await store.list_dags("default", dag_id_pattern=SQLISH)).total == 0
    assert (await store.list_dags("default", tags=[SQLISH])).total == 0
    assert (await store.list_runs("default", ALL, run_id_pattern=SQLISH)).total == 0
    run = await store.create_run("default", "etl", run_id=SQLISH, conf={SQLISH: SQLISH})
    assert (await store.get_run("default", "etl", SQLISH)).conf == {SQLISH: SQLISH}
    assert run.run_id == SQLISH
    await store.add_audit("default", SQLISH, owner=SQLISH, extra={"q": SQLISH})
    assert (await store.list_audit("default", event=SQLISH)).items[0].owner == SQLISH
    assert (await store.list_dags("default")).total == 1
