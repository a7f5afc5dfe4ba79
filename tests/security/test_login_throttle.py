"""Nobody can keep an account's owner out by failing passwords for it (issue 10, "anyone can lock any account").

Throttling is per (account, address) and per address; failures on the account from everywhere only slow
its attempts down. Each visitor here has its own loopback source address (127.0.0.x)."""

from __future__ import annotations

import pytest

from tests.support.console_client import Visitor
from tests.support.harness import Harness
from tests.support.processes import clean_env, cli
from tokenhub.accounts import service as accounts
from tokenhub.config import Settings

PASSWORD = "correct-horse-battery"


@pytest.fixture
def admin(gateway: Harness) -> str:
    gateway.write(lambda c: accounts.create_user(c, "admin@example.com", password=PASSWORD, is_admin=True))
    return "admin@example.com"


def test_failures_from_one_address_do_not_lock_the_owner_out(gateway: Harness, admin: str):
    attacker = Visitor(gateway.server.url, "127.0.0.66")
    for _ in range(5):
        assert attacker.log_in(admin, "wrong-password").status == 400
    refused = attacker.log_in(admin, "wrong-password")
    assert refused.status == 429 and 0 < int(refused.headers["Retry-After"]) <= 15 * 60
    assert attacker.log_in(admin, PASSWORD).status == 429  # this address is done with this account for a while
    owner = Visitor(gateway.server.url, "127.0.0.7")
    answer = owner.log_in(admin, PASSWORD)
    assert answer.status == 303, answer.body
    assert owner.signed_in()


def test_failures_from_many_addresses_slow_the_account_down_but_never_refuse_the_owner(gateway: Harness, admin: str):
    for i in range(7):  # a botnet: few failures per address, many for the account
        answer = Visitor(gateway.server.url, f"127.0.1.{10 + i}").log_in(admin, "wrong-password")
        assert answer.status == 400, answer.status
    # Account-wide: 7 failures, 2 past the free 5: each attempt now waits 0.5 * 2**2 = 2 s before its answer.
    guess = Visitor(gateway.server.url, "127.0.1.99").log_in(admin, "wrong-password")
    assert guess.status == 400 and guess.seconds >= 1.8
    owner = Visitor(gateway.server.url, "127.0.0.8")
    answer = owner.log_in(admin, PASSWORD)
    assert answer.status == 303 and answer.seconds >= 1.8  # slowed, and signed in
    assert owner.signed_in()


def test_one_address_is_refused_after_twenty_failures_on_any_accounts(gateway: Harness):
    sprayer = Visitor(gateway.server.url, "127.0.2.1")
    for i in range(20):
        assert sprayer.log_in(f"user{i}@example.com", "wrong-password").status == 400
    assert sprayer.log_in("someone-else@example.com", "wrong-password").status == 429


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(gateway: Harness, admin: str):
    # Without TOKENHUB_TRUSTED_PROXIES a client cannot pick its address (and so escape its own limit).
    liar = Visitor(gateway.server.url, "127.0.3.1")
    for i in range(5):
        liar.headers["X-Forwarded-For"] = f"198.51.100.{i}"
        assert liar.log_in(admin, "wrong-password").status == 400
    liar.headers["X-Forwarded-For"] = "198.51.100.200"
    assert liar.log_in(admin, "wrong-password").status == 429


def test_behind_a_trusted_proxy_the_client_is_the_rightmost_untrusted_hop(make_gateway, sqlite_url: str):
    gateway: Harness = make_gateway(sqlite_url, trusted_proxies=_networks("127.0.4.1, 10.9.0.0/16"))
    gateway.write(lambda c: accounts.create_user(c, "owner@example.com", password=PASSWORD))
    proxy = Visitor(gateway.server.url, "127.0.4.1")
    # The attacker behind the proxy makes up a left-hand entry; the proxies appended what they saw.
    proxy.headers["X-Forwarded-For"] = "203.0.113.50, 198.51.100.7, 10.9.1.1"
    for _ in range(5):
        assert proxy.log_in("owner@example.com", "wrong-password").status == 400
    assert proxy.log_in("owner@example.com", PASSWORD).status == 429  # 198.51.100.7 is refused for this account...
    proxy.headers["X-Forwarded-For"] = "203.0.113.50, 198.51.100.8, 10.9.1.1"
    owner = proxy.log_in("owner@example.com", PASSWORD)  # ...the owner behind the same proxy is not
    assert owner.status == 303
    # An untrusted peer's header is not believed: 127.0.4.2 counts as itself.
    other = Visitor(gateway.server.url, "127.0.4.2", headers={"X-Forwarded-For": "198.51.100.7"})
    assert other.log_in("owner@example.com", PASSWORD).status == 303


def _networks(raw: str):  # type: ignore[no-untyped-def]
    return Settings.from_env({"TOKENHUB_HOME": "/nonexistent", "TOKENHUB_TRUSTED_PROXIES": raw}).trusted_proxies


def test_a_bad_trusted_proxies_setting_stops_the_start(tmp_path):
    env = {**clean_env(tmp_path / "home"), "TOKENHUB_TRUSTED_PROXIES": "127.0.0.1, proxy.example"}
    answer = cli(["serve", "--port", "1"], env)
    assert answer.returncode != 0
    assert "TOKENHUB_TRUSTED_PROXIES must list IP addresses or CIDRs, got 'proxy.example'" in answer.stderr
    assert "Traceback" not in answer.stderr
