"""Session cookies, CSRF tokens, the login limiter and redirects, without a browser."""

from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from tokenhub.accounts.sessions import MAX_AGE, Session, SessionCodec
from tokenhub.console.core import safe_next
from tokenhub.console.ratelimit import LoginLimiter
from tokenhub.secrets_box import SecretBox


def codec(secret: str = "s3cret") -> SessionCodec:
    box = SecretBox(secret)
    return SessionCodec(box.derive_key("console-session"), box.derive_key("console-csrf"))


def test_round_trip_and_tampering():
    c = codec()
    session = c.new(42, 3)
    value = c.dumps(session)
    assert c.loads(value) == session
    assert c.loads(value[:-2] + ("AA" if not value.endswith("AA") else "BB")) is None
    assert codec("another-secret").loads(value) is None
    assert c.loads("") is None and c.loads(None) is None and c.loads("garbage.value.here") is None


def test_expired_session_is_refused(monkeypatch):
    c = codec()
    value = c.dumps(Session("sid", 1, 0))
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + MAX_AGE + 5)
    assert c.loads(value) is None


def test_the_session_key_is_derived_not_the_secret():
    # A cookie signed with the raw secret (or the Fernet key) must not verify.
    forged = URLSafeTimedSerializer("s3cret", salt="tokenhub.console.session").dumps(["sid", 1, 0])
    assert codec().loads(forged) is None
    box = SecretBox("s3cret")
    assert box.derive_key("console-session") != box.derive_key("console-csrf")


def test_csrf_is_bound_to_the_session():
    c = codec()
    one, two = c.new(), c.new()
    assert one.sid != two.sid
    assert c.csrf_valid(one, c.csrf_token(one))
    assert not c.csrf_valid(one, c.csrf_token(two))
    assert not c.csrf_valid(one, None) and not c.csrf_valid(one, "")


def test_limiter_per_pair_per_address_and_account_slowdown():
    now = [1000.0]
    limiter = LoginLimiter(clock=lambda: now[0])
    for _ in range(5):
        assert limiter.retry_after("a@x.io", "10.0.0.1") == 0
        limiter.fail("A@x.io", "10.0.0.1")
    assert limiter.retry_after("a@x.io", "10.0.0.1") == 901  # this address, this account
    assert limiter.retry_after("a@x.io", "10.0.0.2") == 0  # the owner elsewhere is not refused...
    assert limiter.delay("a@x.io") == 0.5  # ...only slowed down
    limiter.fail("a@x.io", "10.0.0.3")
    limiter.fail("a@x.io", "10.0.0.4")
    assert limiter.delay("a@x.io") == 2.0
    for i in range(10):
        limiter.fail("a@x.io", f"10.0.1.{i}")
    assert limiter.delay("a@x.io") == 8.0  # capped
    assert limiter.retry_after("b@x.io", "10.0.0.1") == 0 and limiter.delay("b@x.io") == 0
    for i in range(15):
        limiter.fail(f"user{i}@x.io", "10.0.0.1")
    assert limiter.retry_after("fresh@x.io", "10.0.0.1") > 0  # 20 failures from one address
    assert limiter.retry_after("fresh@x.io", "10.0.0.9") == 0
    limiter.succeed("a@x.io", "10.0.0.1")
    assert limiter.pairs.retry_after("a@x.io\n10.0.0.1") == 0 and limiter.delay("a@x.io") == 8.0
    now[0] += 901
    assert limiter.retry_after("a@x.io", "10.0.0.1") == 0 and limiter.delay("a@x.io") == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/keys", "/keys"), ("/keys?x=1", "/keys?x=1"), ("//evil.example", "/"), ("https://evil.example/", "/"),
     ("/\\evil.example", "/"), ("", "/"), (None, "/"), ("keys", "/"), ("/\r\nSet-Cookie: x=1", "/"), ("/a\tb", "/"),
     ("/caf\u00e9?q=1", "/caf%C3%A9?q=1")],
)
def test_safe_next(value, expected):
    assert safe_next(value) == expected
