"""Encryption at rest for connection secrets (password, extra), keyed by LEOFLOW_SECRET_KEY.

Key derivation: the configured string (any length; use at least 32 random characters, e.g.
``openssl rand -hex 32``) is fed as UTF-8 to HKDF-SHA256 with salt ``leoflow/secret-key/v1`` and
info ``connections``, giving a 256-bit AES key. Cipher: AES-256-GCM with a random 96-bit nonce;
the associated data binds a ciphertext to its tenant, connection and field, so a value copied
into another row does not decrypt. Stored text: ``v1:<key id>:<base64url(nonce || ciphertext)>``
where the key id (8 hex digits of a hash of the key) lets a wrong key be named in the error
instead of failing with an opaque authentication error.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from leoflow.errors import Unavailable

_SALT = b"leoflow/secret-key/v1"
_INFO = b"connections"
_PREFIX = "v1"


def derive_key(secret: str) -> bytes:
    """The 32-byte AES key derived from a LEOFLOW_SECRET_KEY string."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO)
    return hkdf.derive(secret.encode("utf-8"))


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"leoflow-key-id:" + key).hexdigest()[:8]


class SecretBox:
    """Encrypts and decrypts small secrets; built from the configured key (or None)."""

    def __init__(self, secret: str | None) -> None:
        self._aead: AESGCM | None = None
        self.key_id: str | None = None
        if secret:
            key = derive_key(secret)
            self._aead = AESGCM(key)
            self.key_id = _key_id(key)

    @property
    def available(self) -> bool:
        """True when a key is configured."""
        return self._aead is not None

    def _require(self) -> AESGCM:
        if self._aead is None:
            raise Unavailable(
                "connection secrets cannot be stored or read: LEOFLOW_SECRET_KEY is not set",
                field="LEOFLOW_SECRET_KEY",
                hint="set LEOFLOW_SECRET_KEY (e.g. `openssl rand -hex 32`) on the server",
            )
        return self._aead

    def encrypt(self, plaintext: str | None, context: str) -> str | None:
        """Ciphertext text for ``plaintext`` (None stays None); ``context`` is bound to it."""
        if plaintext is None:
            return None
        aead = self._require()
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        blob = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{_PREFIX}:{self.key_id}:{blob}"

    def decrypt(self, stored: str | None, context: str) -> str | None:
        """Plaintext of a stored value (None stays None); Unavailable on a wrong key."""
        if stored is None:
            return None
        aead = self._require()
        try:
            prefix, key_id, blob = stored.split(":", 2)
        except ValueError:
            raise Unavailable(f"stored secret for {context} is not in a known format") from None
        if prefix != _PREFIX:
            raise Unavailable(f"stored secret for {context} uses unknown format {prefix!r}")
        if key_id != self.key_id:
            raise Unavailable(
                f"the secret of {context} was encrypted with another LEOFLOW_SECRET_KEY "
                f"(key id {key_id}; the configured key has id {self.key_id})",
                field="LEOFLOW_SECRET_KEY",
                hint="restore the key used when the connection was saved, or re-enter the "
                "connection's password and extra",
            )
        raw = base64.urlsafe_b64decode(blob.encode("ascii"))
        try:
            plain = aead.decrypt(raw[:12], raw[12:], context.encode("utf-8"))
        except InvalidTag:
            raise Unavailable(
                f"the secret of {context} does not decrypt (tampered with, or moved from "
                "another row)",
                field="LEOFLOW_SECRET_KEY",
            ) from None
        return plain.decode("utf-8")
