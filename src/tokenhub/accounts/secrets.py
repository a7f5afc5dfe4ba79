"""API key and password primitives.

API keys are ``th-`` + 43 url-safe characters (256 random bits). Only their SHA-256 is stored:
a fast hash is right for a secret with that much entropy, and lets the hot path find a key with one
dictionary lookup. Passwords, which people choose, get Argon2id.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

KEY_PREFIX = "th-"
_hasher = PasswordHasher()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """What may be shown after creation: enough to recognise a key, useless to use it."""
    return key[: len(KEY_PREFIX) + 6] + "…"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
