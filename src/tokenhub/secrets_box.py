"""Encryption at rest for upstream keys (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from ``TOKENHUB_SECRET_KEY``; if unset, one is generated on first start and kept in
``$TOKENHUB_HOME/secret.key`` (mode 0600). Several gateway processes sharing a database must
share the key: set ``TOKENHUB_SECRET_KEY`` on all of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, secret: str) -> None:
        self._key = _fernet_key(secret)
        self._fernet = Fernet(self._key)

    def derive_key(self, purpose: str) -> bytes:
        """A separate key for another use (signing console sessions, CSRF tokens): HMAC-SHA256(secret, purpose)."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise RuntimeError(
                "a stored upstream key cannot be decrypted: TOKENHUB_SECRET_KEY differs from the one it was stored with"
            ) from None


def _fernet_key(secret: str) -> bytes:
    """Accept a Fernet key as generated, or derive one from any other passphrase."""
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
    secret = Fernet.generate_key().decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret
