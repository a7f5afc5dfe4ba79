"""Thinking-block signatures and redacted-thinking data: made and checked by the fake."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any


def sign_thinking(key: bytes, thinking: str) -> str:
    """The signature this fake issues for a thinking text (opaque base64, like the real ones)."""
    mac = hmac.new(key, b"thinking\x00" + thinking.encode(), hashlib.sha256).digest()
    return base64.b64encode(b"\x12\x08fake" + mac).decode()


def redacted_data(key: bytes) -> str:
    nonce = secrets.token_bytes(24)
    mac = hmac.new(key, b"redacted\x00" + nonce, hashlib.sha256).digest()
    return base64.b64encode(nonce + mac).decode()


def redacted_data_valid(key: bytes, data: Any) -> bool:
    try:
        raw = base64.b64decode(data, validate=True) if isinstance(data, str) else b""
    except ValueError:
        return False
    if len(raw) != 24 + 32:
        return False
    expected = hmac.new(key, b"redacted\x00" + raw[:24], hashlib.sha256).digest()
    return hmac.compare_digest(expected, raw[24:])
