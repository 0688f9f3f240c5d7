"""Per-user favorite DAGs, and the one-round-trip DAG list page (totals, order, filters)."""

from __future__ import annotations

import pytest
from store_helpers import make_spec

from leoflow.errors import Conflict, NotFound
from leoflow.store import Store

SQLISH = "x'); DROP TABLE dag_favorites; --"


async def test_favorites_are_per_user_tenant_and_dag(store: Store) -> None:
    for dag_id in ("a", "b", "c"):
        await store.register_version("default", make_spec(dag_id))
    await store.create_tenant("other")
    await store.register_version("other", make_spec("a"))

    await store.set_dag_favorite("default", "alice", "a", favorite=True)
    await store.set_dag_favorite("default", "alice", "a", favorite=True)  # idempotent
    await store.set_dag_favorite("default", "alice", "c", favorite=True)
    await store.set_dag_favorite("default", "bob", "b", favorite=True)
    await store.set_dag_favorite("other", "alice", "a", favorite=True)

    assert await store.list_favorite_dag_ids("default", "alice") == {"a", "c"}
    assert await store.list_favorite_dag_ids("default", "bob") == {"b"}
    assert await store.list_favorite_dag_ids("other", "alice") == {"a"}
    assert await store.list_favorite_dag_ids("default", SQLISH) == set()
    assert await store.is_dag_favorite("default", "alice", "c")
    assert not await store.is_dag_favorite("default", "bob", "c")

    mine = await store.list_dags("default", favorite_of="alice", is_favorite=True)
    assert [d.dag_id for d in mine.items] == ["a", "c"] and mine.total == 2
    others = await store.list_dags("default", favorite_of="alice", is_favorite=False)
    assert [d.dag_id for d in others.items] == ["b"] and others.total == 1
    ignored = await store.list_dags("default", is_favorite=True)  # no user: no filter
    assert ignored.total == 3

    await store.set_dag_favorite("default", "alice", "a", favorite=False)
    with pytest.raises(Conflict, match="not marked as favorite"):
        await store.set_dag_favorite("default", "alice", "a", favorite=False)
    with pytest.raises(NotFound):
        await store.set_dag_favorite("default", "alice", SQLISH, favorite=True)
    await store.delete_dag("default", "c")
    assert await store.list_favorite_dag_ids("default", "alice") == set()
    assert await store.list_favorite_dag_ids("other", "alice") == {"a"}


async def test_list_page_totals_order_and_filters_in_one_query(store: Store) -> None:
    for i in range(25):
        await store.register_version(
            "default", make_spec(f"d{i:02d}", tags=["even" if i % 2 == 0 else "odd"])
        )
    first = await store.list_dags("default", limit=10)
    assert first.total == 25 and [d.dag_id for d in first.items] == [f"d{i:02d}" for i in range(10)]
    last = await store.list_dags("default", limit=10, offset=20)
    assert last.total == 25 and [d.dag_id for d in last.items][-1] == "d24"
    beyond = await store.list_dags("default", limit=10, offset=100)
    assert beyond.items == [] and beyond.total == 25
    desc = await store.list_dags("default", limit=3, order_by="-dag_id")
    assert [d.dag_id for d in desc.items] == ["d24", "d23", "d22"]
    odd = await store.list_dags("default", tags=["odd"], limit=5, offset=10)
    assert odd.total == 12 and [d.dag_id for d in odd.items] == ["d21", "d23"]
    none = await store.list_dags("default", dag_id_pattern="zzz")
    assert none.items == [] and none.total == 0
    # Decorations still come with the page: the current version's number and label.
    assert first.items[0].current_version_number == 1 and first.items[0].content_hash
