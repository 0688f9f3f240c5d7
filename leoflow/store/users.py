"""Tenants and users (argon2id password hashes via argon2-cffi)."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from leoflow.errors import NotFound
from leoflow.settings import Settings
from leoflow.store.api import (
    DEFAULT_POOL,
    DEFAULT_POOL_SLOTS,
    DEFAULT_TENANT,
    UNSET,
    Page,
    Role,
    Tenant,
    User,
)
from leoflow.store.db import Query, Repo, require

_HASHER = PasswordHasher()
_USER_COLS = (
    "u.id, t.name AS tenant, u.username, u.role, u.is_active, u.email, u.created_at, "
    "u.updated_at, u.last_login_at"
)
# A real hash of a random password: verifying against it costs as much as a real check, so a
# missing user and a wrong password take the same time.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


def _user(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        tenant=row["tenant"],
        username=row["username"],
        role=Role(row["role"]),
        is_active=row["is_active"],
        email=row["email"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_login_at=row["last_login_at"],
    )


def _tenant(row: asyncpg.Record) -> Tenant:
    return Tenant(id=row["id"], name=row["name"], created_at=row["created_at"])


async def _hash(password: str) -> str:
    # argon2 is deliberately slow (~50 ms): keep it off the event loop.
    return await asyncio.to_thread(_HASHER.hash, password)


def _check(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class UsersRepo(Repo):
    """Tenants and their users."""

    async def create_tenant(self, name: str) -> Tenant:
        """Create a tenant (Conflict when the name exists)."""
        async with self._atomic() as tx:
            row = await tx._fetchrow(
                "INSERT INTO tenants (name) VALUES ($1) RETURNING id, name, created_at", name
            )
            await tx._execute(
                "INSERT INTO pools (tenant_id, name, slots, description) "
                "VALUES ($1, $2, $3, 'Default pool')",
                row["id"],
                DEFAULT_POOL,
                DEFAULT_POOL_SLOTS,
            )
        return _tenant(row)

    async def get_tenant(self, name: str) -> Tenant:
        """The tenant with this name (NotFound)."""
        row = await self._fetchrow("SELECT id, name, created_at FROM tenants WHERE name = $1", name)
        return _tenant(require(row, "tenant", name=name))

    async def list_tenants(self) -> list[Tenant]:
        """All tenants by name."""
        rows = await self._fetch("SELECT id, name, created_at FROM tenants ORDER BY name")
        return [_tenant(r) for r in rows]

    async def create_user(
        self,
        tenant: str,
        username: str,
        password: str,
        role: Role = Role.VIEWER,
        *,
        email: str | None = None,
        is_active: bool = True,
    ) -> User:
        """Create a user with an argon2 password hash (Conflict when the username exists)."""
        tid = await self._tenant_id(tenant)
        pw_hash = await _hash(password)
        row = await self._fetchrow(
            "WITH u AS (INSERT INTO users (tenant_id, username, email, password_hash, role, "
            "is_active) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *) "
            f"SELECT {_USER_COLS} FROM u JOIN tenants t ON t.id = u.tenant_id",
            tid,
            username,
            email,
            pw_hash,
            Role(role).value,
            is_active,
        )
        return _user(row)

    async def get_user(self, tenant: str, username: str) -> User:
        """The user (NotFound)."""
        tid = await self._tenant_id(tenant)
        row = await self._fetchrow(
            f"SELECT {_USER_COLS} FROM users u JOIN tenants t ON t.id = u.tenant_id "
            "WHERE u.tenant_id = $1 AND u.username = $2",
            tid,
            username,
        )
        return _user(require(row, "user", username=username))

    async def verify_password(self, tenant: str, username: str, password: str) -> User | None:
        """The user when the password matches and the account is active, else None."""
        try:
            tid = await self._tenant_id(tenant)
        except NotFound:
            await asyncio.to_thread(_check, _DUMMY_HASH, password)
            return None
        row = await self._fetchrow(
            "SELECT password_hash, is_active FROM users WHERE tenant_id = $1 AND username = $2",
            tid,
            username,
        )
        stored = row["password_hash"] if row else _DUMMY_HASH
        ok = await asyncio.to_thread(_check, stored, password)
        if not (ok and row and row["is_active"]):
            return None
        if _HASHER.check_needs_rehash(stored):
            await self.set_password(tenant, username, password)
        await self._execute(
            "UPDATE users SET last_login_at = now() WHERE tenant_id = $1 AND username = $2",
            tid,
            username,
        )
        return await self.get_user(tenant, username)

    async def list_users(self, tenant: str, *, limit: int = 100, offset: int = 0) -> Page[User]:
        """Users of the tenant by username."""
        tid = await self._tenant_id(tenant)
        q = Query(tid)
        q.where("u.tenant_id = $1")
        select = (
            f"SELECT {_USER_COLS} FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE {q.sql}"
        )
        rows, total = await self._paged(select, q, "ORDER BY username, id", limit, offset)
        return Page([_user(r) for r in rows], total)

    async def set_password(self, tenant: str, username: str, password: str) -> None:
        """Replace the user's password (NotFound)."""
        tid = await self._tenant_id(tenant)
        pw_hash = await _hash(password)
        status = await self._execute(
            "UPDATE users SET password_hash = $3, updated_at = now() "
            "WHERE tenant_id = $1 AND username = $2",
            tid,
            username,
            pw_hash,
        )
        if status.endswith(" 0"):
            raise NotFound(f"user {username!r} not found")

    async def update_user(
        self,
        tenant: str,
        username: str,
        *,
        role: Role | None = None,
        is_active: bool | None = None,
        email: str | None = UNSET,
    ) -> User:
        """Change role, activity or email; None/UNSET leave a field unchanged (NotFound)."""
        tid = await self._tenant_id(tenant)
        q = Query(tid, username)
        sets = ["updated_at = now()"]
        if role is not None:
            sets.append(f"role = {q.arg(Role(role).value)}")
        if is_active is not None:
            sets.append(f"is_active = {q.arg(is_active)}")
        if email is not UNSET:
            sets.append(f"email = {q.arg(email)}")
        status = await self._execute(
            f"UPDATE users SET {', '.join(sets)} WHERE tenant_id = $1 AND username = $2", *q.args
        )
        if status.endswith(" 0"):
            raise NotFound(f"user {username!r} not found")
        return await self.get_user(tenant, username)

    async def delete_user(self, tenant: str, username: str) -> None:
        """Delete the user (NotFound)."""
        tid = await self._tenant_id(tenant)
        status = await self._execute(
            "DELETE FROM users WHERE tenant_id = $1 AND username = $2", tid, username
        )
        if status.endswith(" 0"):
            raise NotFound(f"user {username!r} not found")

    async def bootstrap_admin(
        self, settings: Settings, tenant: str = DEFAULT_TENANT
    ) -> tuple[User, str | None]:
        """Ensure the bootstrap admin exists; returns it and the generated password, if any."""
        username = settings.bootstrap_username
        try:
            return await self.get_user(tenant, username), None
        except NotFound:
            pass
        password = settings.bootstrap_password
        generated = None
        if not password:
            password = generated = secrets.token_urlsafe(18)
        tid = await self._tenant_id(tenant)
        pw_hash = await _hash(password)
        # ON CONFLICT: two replicas starting together both try; the first one wins.
        status = await self._execute(
            "INSERT INTO users (tenant_id, username, password_hash, role) "
            "VALUES ($1, $2, $3, 'admin') ON CONFLICT (tenant_id, username) DO NOTHING",
            tid,
            username,
            pw_hash,
        )
        if status.endswith(" 0"):
            generated = None
        return await self.get_user(tenant, username), generated
