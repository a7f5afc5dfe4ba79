"""Secrets at rest: sealed with libsodium's secretbox; Fernet tokens of earlier releases still open."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet

from tokenhub.secrets_box import SecretBox, is_legacy, load_or_create_secret


def legacy_token(secret: str, plaintext: str) -> str:
    """What an earlier release stored: a Fernet token under SHA-256 of the passphrase."""
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())).encrypt(plaintext.encode()).decode()


def test_round_trip_with_a_fresh_nonce_each_time():
    box = SecretBox("s3cret")
    one, two = box.encrypt("sk-upstream"), box.encrypt("sk-upstream")
    assert one.startswith("v2:") and one != two and "sk-upstream" not in one
    assert box.decrypt(one) == box.decrypt(two) == "sk-upstream"
    assert not is_legacy(one)
    assert SecretBox("s3cret").decrypt(one) == "sk-upstream"  # the key is derived, not random per process


@pytest.mark.parametrize("damage", ["another key", "flipped byte", "cut short", "not base64"])
def test_a_damaged_value_or_another_key_is_refused_without_echoing_it(damage: str):
    sealed = SecretBox("s3cret").encrypt("sk-upstream")
    box = SecretBox("s3cret")
    if damage == "another key":
        box = SecretBox("another-secret")
    elif damage == "flipped byte":
        raw = bytearray(base64.urlsafe_b64decode(sealed[3:]))
        raw[-1] ^= 1
        sealed = "v2:" + base64.urlsafe_b64encode(bytes(raw)).decode()
    elif damage == "cut short":
        sealed = sealed[:20]
    else:
        sealed = "v2:%%%"
    with pytest.raises(RuntimeError, match="TOKENHUB_SECRET_KEY differs") as raised:
        box.decrypt(sealed)
    assert "sk-upstream" not in str(raised.value) and sealed not in str(raised.value)


def test_a_value_sealed_by_an_earlier_release_opens():
    token = legacy_token("s3cret", "sk-from-last-year")
    assert is_legacy(token)
    assert SecretBox("s3cret").decrypt(token) == "sk-from-last-year"
    with pytest.raises(RuntimeError, match="differs"):
        SecretBox("another-secret").decrypt(token)


def test_a_generated_key_is_kept_private_and_used_as_is(tmp_path):
    secret = load_or_create_secret(tmp_path / "home", None)
    path = tmp_path / "home" / "secret.key"
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_text().strip() == secret
    assert len(base64.urlsafe_b64decode(secret)) == 32
    assert load_or_create_secret(tmp_path / "home", None) == secret
    assert load_or_create_secret(tmp_path / "home", "configured") == "configured"
    # A generated key is the master key itself (Fernet's key format, as earlier releases generated it):
    assert SecretBox(secret).decrypt(Fernet(secret.encode()).encrypt(b"sk-x").decode()) == "sk-x"
