"""Single-owner locks for Lite: one ``leoflow lite`` per home, one owner per embedded server.

A lock is an ``fcntl.flock`` on a small JSON file holding the owner's pid and URL. The kernel
drops the lock when the owner dies, however it dies, so a crashed run never blocks the next one;
the file's contents only serve to tell the user who holds it and where.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO

from leoflow.errors import Conflict


class LiteAlreadyRunning(Conflict):
    """Another live process owns this Lite home (or this embedded server)."""

    def __init__(self, message: str, *, pid: int | None, url: str | None, path: str) -> None:
        super().__init__(
            message,
            path=path,
            hint="stop it first (Ctrl-C in its terminal, or kill -TERM <pid>), "
            "or use another LEOFLOW_HOME",
        )
        self.pid = pid
        self.url = url


class OwnerLock:
    """An exclusive, non-blocking lock file recording ``{"pid", "url", "started_at"}``."""

    def __init__(self, path: Path, what: str = "Leoflow Lite") -> None:
        self.path = path
        self.what = what
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._file is not None

    def acquire(self, url: str | None = None) -> None:
        """Take the lock or raise :class:`LiteAlreadyRunning` naming the holder's pid and URL."""
        if self._file is not None:
            return
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.read()
            handle.close()
            pid, where = holder.get("pid"), holder.get("url")
            raise LiteAlreadyRunning(
                f"{self.what} is already running on this home "
                f"(pid {pid if pid else 'unknown'}, {where or 'URL not published yet'})",
                pid=pid if isinstance(pid, int) else None,
                url=where if isinstance(where, str) else None,
                path=str(self.path),
            ) from None
        except BaseException:
            handle.close()
            raise
        self._file = handle
        self.update(url)

    def update(self, url: str | None) -> None:
        """Publish where the owner can be reached (e.g. the API URL once it listens)."""
        if self._file is None:
            raise RuntimeError("update() on a lock that is not held")
        record = {"pid": os.getpid(), "url": url, "started_at": time.time()}
        self._file.seek(0)
        self._file.truncate()
        self._file.write(json.dumps(record))
        self._file.flush()

    def read(self) -> dict[str, object]:
        """The holder's record, or ``{}`` when there is none or it is unreadable."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        """Give the lock up (idempotent); the file stays, empty, for the next owner."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.seek(0)
            self._file.truncate()
        self._file.close()  # closing the descriptor drops the flock
        self._file = None
