"""``HEAD /api``: Claude Code warms its connection with a HEAD of its ANTHROPIC_BASE_URL before the first call."""

from __future__ import annotations

import urllib.request

from tests.support.harness import Harness


def test_head_of_the_api_base_is_answered(gateway: Harness):
    request = urllib.request.Request(gateway.base_url.removesuffix("/v1"), method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200 and response.read() == b""
