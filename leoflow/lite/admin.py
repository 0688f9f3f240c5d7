"""Admin account chores for Lite that run while Lite is stopped (``reset-password``).

Resetting needs the embedded Postgres, so it takes the home like ``leoflow lite`` does: while
Lite runs it is refused with the running instance's pid and URL (stop it, reset, start again);
while stopped, the datastores are started just long enough to write the new hash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets

from leoflow.lite.datastores import Datastores
from leoflow.settings import Settings
from leoflow.store.api import DEFAULT_TENANT

PASSWORD_BYTES = 18


def new_password() -> str:
    """A fresh random password (24 URL-safe characters)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def reset_admin_password(settings: Settings, username: str | None = None) -> tuple[str, str]:
    """Give the Lite admin (or ``username``) a new random password; return (user, password)."""
    name = username or settings.bootstrap_username
    password = new_password()
    with Datastores(settings.home, url=None) as ds:
        asyncio.run(_reset(settings, ds.database_url, name, password))
    return name, password


async def _reset(settings: Settings, dsn: str, username: str, password: str) -> None:
    from leoflow.store import Store

    wanted = dataclasses.replace(settings, bootstrap_username=username, bootstrap_password=password)
    store = await Store.connect(dsn, settings=wanted, migrate=True)
    try:
        # Creates the account (and the tenant) when missing; otherwise leaves it alone.
        _user, generated = await store.bootstrap_admin(wanted)
        if generated is None:
            await store.set_password(DEFAULT_TENANT, username, password)
    finally:
        await store.close()
