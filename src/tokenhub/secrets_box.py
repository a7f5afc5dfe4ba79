"""Encryption at rest for stored secrets: upstream keys and TOTP secrets.

Sealed with libsodium's secretbox (XSalsa20-Poly1305, a random 24-byte nonce per value) through
PyNaCl, under a key derived from ``TOKENHUB_SECRET_KEY``; a sealed value is ``v2:`` followed by the
URL-safe base64 of nonce and ciphertext. Values sealed by earlier releases are Fernet tokens
(AES-128-CBC + HMAC-SHA256): they still open, and the gateway reseals them at start
(``tokenhub.storage.resealing``), so a running gateway never loads the ``cryptography`` package
(7 MB resident; bench/README.md, session 12).

The key comes from ``TOKENHUB_SECRET_KEY``; if unset, one is generated on first start and kept in
``$TOKENHUB_HOME/secret.key`` (mode 0600). Several gateway processes sharing a database must
share the key: set ``TOKENHUB_SECRET_KEY`` on all of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox as _Secretbox

SEALED = "v2:"  # the prefix of a value sealed by this release


class SecretBox:
    def __init__(self, secret: str) -> None:
        self._key = _master_key(secret)
        self._box = _Secretbox(self.derive_key("secrets-at-rest"))

    def derive_key(self, purpose: str) -> bytes:
        """A separate key for each use (sealing, signing console sessions, CSRF tokens): HMAC-SHA256(secret, purpose)."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    def encrypt(self, plaintext: str) -> str:
        return SEALED + base64.urlsafe_b64encode(self._box.encrypt(plaintext.encode())).decode()

    def decrypt(self, token: str) -> str:
        if is_legacy(token):
            return self._open_legacy(token)
        try:
            return self._box.decrypt(base64.urlsafe_b64decode(token[len(SEALED) :].encode())).decode()
        except (CryptoError, binascii.Error, ValueError):
            raise _undecryptable() from None

    def _open_legacy(self, token: str) -> str:
        from cryptography.fernet import Fernet, InvalidToken  # only for values sealed before v2

        try:
            return Fernet(self._key).decrypt(token.encode()).decode()
        except (InvalidToken, ValueError):
            raise _undecryptable() from None


def is_legacy(token: str) -> bool:
    """A value sealed by an earlier release (a Fernet token), which ``reseal`` rewrites."""
    return not token.startswith(SEALED)


def _undecryptable() -> RuntimeError:
    return RuntimeError("a stored secret cannot be decrypted: TOKENHUB_SECRET_KEY differs from the one it was stored with")


def _master_key(secret: str) -> bytes:
    """Accept a generated key (32 random bytes, URL-safe base64: Fernet's key format, which earlier
    releases generated), or derive one from any other passphrase."""
    try:
        if len(base64.urlsafe_b64decode(secret.encode())) == 32:
            return secret.encode()
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())


def load_or_create_secret(home: Path, configured: str | None) -> str:
    if configured:
        return configured
    path = home / "secret.key"
    if path.exists():
        return path.read_text().strip()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, like the key in it
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret
