"""``?next=`` after login and after a language switch: hostile values end in a safe local redirect, never a dropped connection."""

from __future__ import annotations

import http.client
import re
from urllib.parse import urlencode, urlsplit

import pytest

from tests.support.harness import Harness
from tokenhub.accounts import service as accounts

PASSWORD = "correct-horse-battery"
HOSTILE = ["/%0D%0ASet-Cookie:%20pwned=1", "/keys%0ALocation:%20https://evil.example", "/%0D", "/x%7F", "/%E2%80%A8"]


def ask(harness: Harness, method: str, target: str, body: str | None = None, cookie: str = "") -> http.client.HTTPResponse:
    """One request on a fresh socket; a dropped connection raises (RemoteDisconnected) and fails the test."""
    host, port = urlsplit(harness.server.url).hostname, urlsplit(harness.server.url).port
    conn = http.client.HTTPConnection(host, port, timeout=15)
    headers = {"Cookie": cookie} if cookie else {}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, target, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def assert_safe(response: http.client.HTTPResponse) -> None:
    assert response.status in (303, 400), response.status
    assert "pwned" not in (response.getheader("Set-Cookie") or "")
    if response.status == 303:
        location = response.getheader("Location") or ""
        assert location.startswith("/") and not location.startswith("//"), location
        assert all(0x20 < ord(char) < 0x7F for char in location), repr(location)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_language_switch_with_a_hostile_next(gateway: Harness, hostile: str):
    response = ask(gateway, "GET", f"/lang/zh?next={hostile}")
    assert_safe(response)
    assert response.status == 303 and response.getheader("Location") in ("/", "/%E2%80%A8")
    assert "lang=zh" in (response.getheader("Set-Cookie") or "")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_login_with_a_hostile_next(gateway: Harness, hostile: str):
    gateway.write(lambda c: accounts.create_user(c, "next@example.com", password=PASSWORD))
    page = ask(gateway, "GET", f"/login?next={hostile}")
    assert page.status == 200
    cookie = (page.getheader("Set-Cookie") or "").split(";")[0]
    # The login form of that page, posted back: the hostile next travels in the query and in the form.
    body = fetch_body(gateway, f"/login?next={hostile}", cookie)
    csrf = re.search(r'name="csrf" value="([^"]+)"', body).group(1)  # type: ignore[union-attr]
    form_next = re.search(r'name="next" value="([^"]*)"', body).group(1)  # type: ignore[union-attr]
    assert "\r" not in form_next and "\n" not in form_next
    form = urlencode({"csrf": csrf, "email": "next@example.com", "password": PASSWORD, "next": "/\r\nSet-Cookie: pwned=1"})
    response = ask(gateway, "POST", f"/login?next={hostile}", body=form, cookie=cookie)
    assert_safe(response)
    assert response.status == 303  # signed in, and sent somewhere harmless
    assert "th_session=" in (response.getheader("Set-Cookie") or "")


def fetch_body(harness: Harness, target: str, cookie: str) -> str:
    host, port = urlsplit(harness.server.url).hostname, urlsplit(harness.server.url).port
    conn = http.client.HTTPConnection(host, port, timeout=15)
    conn.request("GET", target, headers={"Cookie": cookie})
    body = conn.getresponse().read().decode()
    conn.close()
    return body
