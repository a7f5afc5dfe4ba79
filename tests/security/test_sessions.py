"""Console sessions end on the server: logout, "sign out everywhere" and a password change (issue 10).

A cookie copied before any of them signs nobody in afterwards, in any gateway process sharing the database."""

from __future__ import annotations

from typing import Callable

from tests.support.console_client import Visitor
from tests.support.harness import Harness
from tokenhub.accounts import service as accounts

PASSWORD = "correct-horse-battery"


def signed_in_visitor(harness: Harness, email: str, source: str = "127.0.0.1") -> Visitor:
    visitor = Visitor(harness.server.url, source)
    answer = visitor.log_in(email, PASSWORD)
    assert answer.status == 303, answer.body
    assert visitor.signed_in()
    return visitor


def copy_of(visitor: Visitor, harness: Harness | None = None, source: str = "127.0.0.99") -> Visitor:
    """Someone else with the same cookies (copied from the browser, a proxy log, a shared computer)."""
    return Visitor((harness.server.url if harness else visitor.base_url), source, cookies=dict(visitor.cookies))


def test_logout_ends_the_session_for_a_copied_cookie(gateway: Harness):
    gateway.write(lambda c: accounts.create_user(c, "owner@example.com", password=PASSWORD))
    owner = signed_in_visitor(gateway, "owner@example.com")
    thief = copy_of(owner)
    assert thief.signed_in()
    answer = owner.post("/logout", {}, csrf_from="/keys")
    assert answer.status == 303 and answer.location == "/login"
    assert not owner.signed_in()
    stale = thief.get("/keys")
    assert stale.status == 303 and stale.location.startswith("/login")
    # The copied cookie cannot log out others or do anything else either: a fresh anonymous session.
    assert "owner@example.com" not in thief.get("/login").body


def test_a_logout_in_one_process_is_honoured_by_another(database_url: str, make_gateway: Callable[..., Harness]):
    one, two = make_gateway(database_url), make_gateway(database_url)
    one.write(lambda c: accounts.create_user(c, "multi@example.com", password=PASSWORD))
    owner = signed_in_visitor(one, "multi@example.com")
    thief = copy_of(owner, two)
    assert thief.signed_in()  # the same secret: a session from one is good at the other
    assert owner.post("/logout", {}, csrf_from="/keys").status == 303
    assert not thief.signed_in()


def test_sign_out_everywhere_ends_every_session_of_the_account(gateway: Harness):
    gateway.write(lambda c: accounts.create_user(c, "many@example.com", password=PASSWORD))
    gateway.write(lambda c: accounts.create_user(c, "other@example.com", password=PASSWORD))
    laptop = signed_in_visitor(gateway, "many@example.com", "127.0.0.2")
    phone = signed_in_visitor(gateway, "many@example.com", "127.0.0.3")
    thief = copy_of(phone)
    bystander = signed_in_visitor(gateway, "other@example.com", "127.0.0.4")
    answer = laptop.post("/logout/everywhere", {}, csrf_from="/account/password")
    assert answer.status == 303 and answer.location == "/login?done=signed_out_everywhere"
    assert "You were signed out in every browser." in laptop.get(answer.location).body
    assert not laptop.signed_in() and not phone.signed_in() and not thief.signed_in()
    assert bystander.signed_in()  # another account is untouched
    assert signed_in_visitor(gateway, "many@example.com", "127.0.0.2").signed_in()  # and one can sign in again


def test_sign_out_everywhere_needs_the_form_token(gateway: Harness):
    gateway.write(lambda c: accounts.create_user(c, "csrf@example.com", password=PASSWORD))
    owner = signed_in_visitor(gateway, "csrf@example.com")
    assert owner.request("POST", "/logout/everywhere", form={}).status == 403
    assert owner.signed_in()


def test_a_password_change_ends_the_other_sessions_only(gateway: Harness):
    gateway.write(lambda c: accounts.create_user(c, "change@example.com", password=PASSWORD))
    here = signed_in_visitor(gateway, "change@example.com", "127.0.0.2")
    there = signed_in_visitor(gateway, "change@example.com", "127.0.0.3")
    before = copy_of(here)
    new = "another-horse-battery"
    answer = here.post("/account/password", {"current": PASSWORD, "password": new, "confirm": new})
    assert answer.status == 303, answer.body
    assert here.signed_in()
    assert not there.signed_in()
    assert not before.signed_in()  # the cookie this browser had before the change is over too
