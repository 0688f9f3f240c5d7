"""Lite's generated credentials: the JWT signing secret and the key for secrets at rest.

Each is one random token in its own 0600 file under ``$LEOFLOW_HOME/credentials/`` (a 0700
folder), created on first use and read on every later start, so tokens and encrypted
connections stay valid across restarts. A value given in the environment
(``LEOFLOW_AUTH_JWT_SECRET``, ``LEOFLOW_SECRET_KEY``) wins and nothing is written for it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from leoflow.errors import LeoflowError

JWT_SECRET_FILE = "jwt_secret"
SECRET_KEY_FILE = "secret_key"


@dataclass(frozen=True)
class LiteSecrets:
    """The two secrets a Lite control plane needs."""

    jwt_secret: str
    secret_key: str


def credentials_dir(home: Path) -> Path:
    """Where Lite keeps its generated credentials."""
    return Path(home) / "credentials"


def _new_secret_key() -> str:
    # A urlsafe-base64 32-byte key: what Fernet (cryptography) expects.
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def load_or_create(path: Path, make: Callable[[], str] | None = None) -> str:
    """The secret stored in ``path``, creating it (0600, written atomically) when absent."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        value = ""
    except OSError as exc:
        raise LeoflowError(
            f"cannot read {path}: {exc.strerror}",
            path=str(path),
            hint="fix the file's permissions or delete it to generate a new one",
        ) from exc
    if value:
        return value
    value = make() if make is not None else secrets.token_urlsafe(48)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as sink:
            sink.write(value + "\n")
        # link() fails when another start won the race: then its value is the one to use.
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text(encoding="utf-8").strip()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return value


def ensure_secrets(
    home: Path, *, jwt_secret: str | None = None, secret_key: str | None = None
) -> LiteSecrets:
    """The JWT secret and secret key: the given ones, else those kept under ``home``."""
    folder = credentials_dir(home)
    return LiteSecrets(
        jwt_secret=jwt_secret or load_or_create(folder / JWT_SECRET_FILE),
        secret_key=secret_key or load_or_create(folder / SECRET_KEY_FILE, _new_secret_key),
    )
