"""Numbered SQL migrations (``migrations/NNN_name.sql``), applied in order under an advisory lock.

Each file runs in its own transaction together with its row in ``schema_migrations`` (version,
name, sha256 checksum, applied_at), so a crash leaves either all of a migration or none of it.
The whole run holds ``pg_advisory_lock(MIGRATION_LOCK_KEY)``: concurrent callers queue up, and the
later ones find nothing left to apply. A file edited after it was applied is refused (checksum
mismatch) rather than silently ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from leoflow.errors import LeoflowError
from leoflow.store.db import connection_errors, unavailable

MIGRATION_LOCK_KEY = 0x4C656F4D6967  # "LeoMig"; distinct from the scheduler's leader lock
_NAME_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        """``001_initial``."""
        return f"{self.version:03d}_{self.name}"


def load_migrations() -> list[Migration]:
    """Every migration shipped in leoflow/store/migrations, by version."""
    found: list[Migration] = []
    for entry in resources.files("leoflow.store").joinpath("migrations").iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise LeoflowError(f"duplicate migration numbers in {versions}")
    return found


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def _apply_all(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_BOOKKEEPING)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {r["version"]: r for r in rows}
        applied: list[str] = []
        for mig in migrations:
            row = done.get(mig.version)
            if row is not None:
                if row["checksum"] != mig.checksum:
                    raise LeoflowError(
                        f"migration {mig.label} changed after it was applied",
                        hint="never edit an applied migration; add a new numbered file instead",
                    )
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    mig.version,
                    mig.name,
                    mig.checksum,
                )
            applied.append(mig.label)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def migrate(
    target: str | asyncpg.Pool | asyncpg.Connection, *, timeout: float = 10.0
) -> list[str]:
    """Apply pending migrations; returns the labels applied (``[]`` when up to date).

    ``target`` is a DSN, a pool or a connection. Safe to call from several processes at once.
    """
    migrations = load_migrations()
    try:
        if isinstance(target, str):
            try:
                conn = await asyncpg.connect(target, timeout=timeout)
            except connection_errors() as exc:
                raise unavailable(exc, target) from exc
            try:
                return await _apply_all(conn, migrations)
            finally:
                await conn.close()
        if isinstance(target, asyncpg.Pool):
            async with target.acquire() as conn:
                return await _apply_all(conn, migrations)
        return await _apply_all(target, migrations)
    except connection_errors() as exc:
        raise unavailable(exc, target if isinstance(target, str) else None) from exc


def migrate_sync(dsn: str, *, timeout: float = 10.0) -> list[str]:
    """Blocking wrapper of ``migrate`` for the CLI."""
    return asyncio.run(migrate(dsn, timeout=timeout))


async def applied_migrations(conn: asyncpg.Connection) -> list[str]:
    """Labels recorded in schema_migrations, by version (``[]`` on a fresh database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    return [f"{r['version']:03d}_{r['name']}" for r in rows]
