"""Unknown addresses: a page in the visitor's language for the console, the JSON error format for the APIs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def fetch(url: str, **headers: str) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_console_paths_get_an_html_page_and_api_paths_json(console):
    base = console.server.url
    status, kind, body = fetch(f"{base}/no/such/page?x=<script>alert(1)</script>")
    assert status == 404 and kind.startswith("text/html")
    assert "There is no page at this address." in body and "<script>alert(1)" not in body
    assert 'href="/login"' in body  # signed out: back to the login page

    status, kind, body = fetch(f"{base}/no/such/page", **{"Accept-Language": "zh-CN,zh;q=0.9"})
    assert status == 404 and "此地址没有页面" in body

    for path in ("/api/v1/nothing-here", "/api/admin/nothing-here"):
        status, kind, body = fetch(f"{base}{path}")
        assert status == 404 and kind.startswith("application/json"), path
        assert json.loads(body)["error"]["type"] == "not_found_error"
