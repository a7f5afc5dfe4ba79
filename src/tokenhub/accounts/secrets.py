"""API key and password primitives.

API keys are ``th-`` + 43 url-safe characters (256 random bits). Only their SHA-256 is stored:
a fast hash is right for a secret with that much entropy, and lets the hot path find a key with one
dictionary lookup. Passwords, which people choose, get Argon2id (argon2-cffi, loaded with the first
password: the API's request path never needs it).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

KEY_PREFIX = "th-"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """What may be shown after creation: enough to recognise a key, useless to use it."""
    return key[: len(KEY_PREFIX) + 6] + "…"


@functools.cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


@functools.cache
def dummy_password_hash() -> str:
    """A hash to check a password against when the account is unknown or has none, so that answering costs the
    same Argon2 time either way. Made on first use (an Argon2 hash at import would slow every start)."""
    return hash_password(secrets.token_urlsafe(18))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash (an unknown account, or one without a password) it is checked
    against a dummy hash, for the same time, and is never right."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(password_hash or dummy_password_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
