"""Users, variables, connections (encrypted at rest), pools, bulk, audit log, import errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from store_helpers import SECRET, make_spec

from leoflow.errors import Conflict, NotFound, Unavailable
from leoflow.settings import Settings
from leoflow.store import (
    BulkAction,
    Connection,
    InvalidArgument,
    Pool,
    Role,
    Store,
    TIState,
    Variable,
)


async def test_users_passwords_and_roles(store: Store) -> None:
    user = await store.create_user("default", "ann", "s3cret!", Role.OP, email="a@x")
    assert user.role is Role.OP and user.is_active
    assert (await store.verify_password("default", "ann", "s3cret!")).username == "ann"
    assert await store.verify_password("default", "ann", "wrong") is None
    assert await store.verify_password("default", "nobody", "s3cret!") is None
    assert await store.verify_password("nowhere", "ann", "s3cret!") is None
    await store.set_password("default", "ann", "new-pass")
    assert await store.verify_password("default", "ann", "s3cret!") is None
    assert await store.verify_password("default", "ann", "new-pass") is not None
    await store.update_user("default", "ann", is_active=False)
    assert await store.verify_password("default", "ann", "new-pass") is None
    with pytest.raises(Conflict):
        await store.create_user("default", "ann", "x")
    raw = await store.pool.fetchval("SELECT password_hash FROM users WHERE username = 'ann'")
    assert raw.startswith("$argon2") and "new-pass" not in raw
    assert Role.ADMIN.allows(Role.OP) and not Role.VIEWER.allows(Role.USER)
    assert (await store.list_users("default")).total == 1
    await store.delete_user("default", "ann")
    with pytest.raises(NotFound):
        await store.get_user("default", "ann")


async def test_bootstrap_admin(store: Store) -> None:
    user, generated = await store.bootstrap_admin(Settings(bootstrap_username="root"))
    assert user.role is Role.ADMIN and generated
    assert await store.verify_password("default", "root", generated) is not None
    again, none = await store.bootstrap_admin(Settings(bootstrap_username="root"))
    assert again.id == user.id and none is None
    _given, pw = await store.bootstrap_admin(
        Settings(bootstrap_username="boss", bootstrap_password="pw-1")
    )
    assert pw is None and await store.verify_password("default", "boss", "pw-1") is not None


async def test_variables_crud_and_bulk(store: Store) -> None:
    await store.create_variable("default", Variable("k1", "v1", "d"))
    with pytest.raises(Conflict):
        await store.create_variable("default", Variable("k1", "v"))
    await store.put_variable("default", Variable("k1", "v2", None))
    assert (await store.get_variable("default", "k1")).value == "v2"
    with pytest.raises(NotFound):
        await store.update_variable("default", Variable("nope", "x"))
    result = await store.bulk_variables(
        "default",
        [
            BulkAction("create", [Variable("k1", "x"), Variable("k2", "y")]),
            BulkAction("create", [Variable("k1", "z")], action_on_existence="skip"),
            BulkAction("delete", ["k2", "missing"], action_on_non_existence="skip"),
            BulkAction("update", [Variable("ghost", "g")]),
        ],
    )
    assert result.create.success == ["k2"]
    assert (
        result.create.errors[0]["status_code"] == 409 and "k1" in result.create.errors[0]["error"]
    )
    assert result.delete.success == ["k2"] and result.delete.errors == []
    assert result.update.errors[0]["status_code"] == 404
    page = await store.list_variables("default", key_pattern="k", order_by="-key")
    assert [v.key for v in page.items] == ["k1"] and page.items[0].value == "v2"
    await store.delete_variable("default", "k1")
    assert (await store.list_variables("default")).total == 0


async def test_connection_secrets_are_encrypted_at_rest(store: Store) -> None:
    conn = Connection(
        "db1", "postgres", host="h", login="u", port=5432, password="pa55word", extra='{"k":"v"}'
    )
    saved = await store.create_connection("default", conn)
    assert saved == conn
    raw = await store.pool.fetchrow("SELECT * FROM connections WHERE conn_id = 'db1'")
    assert "pa55word" not in raw["password_enc"] and '"k"' not in raw["extra_enc"]
    assert raw["password_enc"].startswith("v1:")
    assert (await store.get_connection("default", "db1")).password == "pa55word"
    page = await store.list_connections("default")
    assert page.total == 1 and page.items[0].extra == '{"k":"v"}'
    # A ciphertext copied into another row does not decrypt there.
    await store.create_connection("default", Connection("db2", "http", password="other"))
    await store.pool.execute(
        "UPDATE connections SET password_enc = $1 WHERE conn_id = 'db2'", raw["password_enc"]
    )
    with pytest.raises(Unavailable, match="does not decrypt"):
        await store.get_connection("default", "db2")


async def test_wrong_or_missing_key_is_a_clear_error(store: Store, pg_dsn: str) -> None:
    await store.create_connection("default", Connection("db1", "postgres", password="pw"))
    wrong = await Store.connect(pg_dsn, settings=Settings(secret_key="another-key"))
    missing = await Store.connect(pg_dsn, settings=Settings())
    try:
        with pytest.raises(Unavailable, match="another LEOFLOW_SECRET_KEY") as err:
            await wrong.get_connection("default", "db1")
        assert err.value.hint and "key" in err.value.hint
        with pytest.raises(Unavailable, match="LEOFLOW_SECRET_KEY is not set"):
            await missing.create_connection("default", Connection("c2", "http"))
        with pytest.raises(Unavailable, match="LEOFLOW_SECRET_KEY"):
            await missing.get_connection("default", "db1")
    finally:
        await wrong.close()
        await missing.close()
    right = await Store.connect(pg_dsn, settings=Settings(secret_key=SECRET))
    try:
        assert (await right.get_connection("default", "db1")).password == "pw"
    finally:
        await right.close()


async def test_connection_bulk_and_update(store: Store) -> None:
    result = await store.bulk_connections(
        "default",
        [BulkAction("create", [Connection("a", "http"), Connection("b", "http")])],
    )
    assert result.create.success == ["a", "b"]
    updated = await store.update_connection("default", Connection("a", "ftp", password="p"))
    assert updated.conn_type == "ftp" and updated.password == "p"
    await store.put_connection("default", Connection("a", "ssh"))
    assert (await store.get_connection("default", "a")).password is None
    await store.delete_connection("default", "a")
    with pytest.raises(NotFound):
        await store.delete_connection("default", "a")


async def test_pools_with_occupancy(store: Store) -> None:
    default = await store.get_pool("default", "default_pool")
    assert default.slots == 128 and default.open_slots == 128
    await store.create_pool("default", Pool("small", 2, "tiny", False))
    await store.register_version("default", make_spec())
    run = await store.create_run("default", "etl")
    a = (await store.list_run_tis([run.id]))[0]
    for state in ("scheduled", "queued", "running"):
        await store.transition_ti(a.id, state)
    busy = await store.get_pool("default", "default_pool")
    assert busy.running_slots == 1 and busy.occupied_slots == 1 and busy.open_slots == 127
    with pytest.raises(InvalidArgument):
        await store.delete_pool("default", "default_pool")
    await store.update_pool("default", Pool("small", 5, None, True))
    assert (await store.get_pool("default", "small")).slots == 5
    page = await store.list_pools("default", order_by="-slots")
    assert [p.name for p in page.items] == ["default_pool", "small"]
    result = await store.bulk_pools("default", [BulkAction("delete", ["small", "default_pool"])])
    assert result.delete.success == ["small"] and result.delete.errors[0]["status_code"] == 400
    assert a.state is None and TIState.RUNNING  # the TI object is a snapshot, not live


async def test_audit_log(store: Store) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(5):
        await store.add_audit(
            "default",
            "trigger" if i % 2 else "clear",
            owner="ann",
            dag_id="etl",
            run_id=f"r{i}",
            extra={"i": i},
            when=t0 + timedelta(hours=i),
        )
    page = await store.list_audit("default", event="clear", order_by="-when")
    assert [e.run_id for e in page.items] == ["r4", "r2", "r0"] and page.total == 3
    assert page.items[0].extra == '{"i": 4}'
    after = await store.list_audit("default", after=t0 + timedelta(hours=2))
    assert [e.run_id for e in after.items] == ["r3", "r4"]
    excl = await store.list_audit("default", excluded_events=["clear"])
    assert excl.total == 2
    one = await store.get_audit("default", page.items[0].id)
    assert one.owner == "ann"


async def test_import_errors(store: Store) -> None:
    first = await store.upsert_import_error(
        "default", "proj/dag.py", "Traceback 1", bundle_name="w"
    )
    second = await store.upsert_import_error("default", "proj/dag.py", "Traceback 2")
    assert first.id == second.id and second.stack_trace == "Traceback 2"
    await store.upsert_import_error("default", "other/dag.py", "boom")
    page = await store.list_import_errors("default", filename_pattern="proj")
    assert page.total == 1
    assert (await store.get_import_error("default", first.id)).filename == "proj/dag.py"
    assert await store.delete_import_error("default", "proj/dag.py")
    assert not await store.delete_import_error("default", "proj/dag.py")
    assert (await store.list_import_errors("default")).total == 1


async def test_xcom_index(store: Store) -> None:
    await store.register_version("default", make_spec())
    run = await store.create_run("default", "etl", run_id="r1")
    a = (await store.list_run_tis([run.id]))[0]
    await store.upsert_xcom(a.id, "return_value", 12)
    await store.upsert_xcom(a.id, "return_value", 14)
    await store.upsert_xcom(a.id, "other", 3)
    entries = await store.list_xcoms("default", "etl", "r1", "a")
    assert [(e.key, e.size) for e in entries.items] == [("other", 3), ("return_value", 14)]
    assert (await store.list_xcoms("default")).total == 2
    entry = await store.get_xcom_entry("default", "etl", "r1", "a", "return_value")
    assert entry.size == 14 and entry.logical_date == run.logical_date
    assert await store.delete_xcoms(a.id) == 2
    with pytest.raises(NotFound):
        await store.get_xcom_entry("default", "etl", "r1", "a", "return_value")
