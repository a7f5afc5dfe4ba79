"""What the upstream HTTP client carries from one call to the next: connections, never state.

Providers' APIs sit behind CDNs that set cookies on their answers (Cloudflare's ``__cf_bm`` and
``_cfuvid`` in front of api.openai.com). The gateway's one client session serves every customer: a
cookie one customer's call received must never go out with another's (nor pile up in a jar that
every call would then filter)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiohttp import web

from tests.conftest import UPSTREAM_KEY
from tests.support.harness import Harness
from tests.support.scenarios import MODEL, customer, priced_model
from tests.support.servers import ServerThread
from tokenhub.simulator.openai import FakeOpenAIState
from tokenhub.simulator.openai import create_app as create_fake_openai

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
def cookie_setting_upstream() -> Iterator[ServerThread]:
    """The fake OpenAI API, its answers carrying the cookies a CDN in front of it sets."""
    app = create_fake_openai(api_keys={UPSTREAM_KEY})

    @web.middleware
    async def set_cookies(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.set_cookie("__cf_bm", f"bm-{len(app['state'].requests)}", path="/", httponly=True, samesite="None")
        response.set_cookie("_cfuvid", "uv-1", path="/", httponly=True, samesite="None")
        return response

    app.middlewares.append(set_cookies)
    server = ServerThread(app).start()
    yield server
    server.stop()


def test_a_cookie_an_upstream_sets_never_goes_out_with_a_later_call(gateway: Harness, cookie_setting_upstream: ServerThread):
    # by name, as an upstream is (a cookie jar refuses cookies from an IP address: 127.0.0.1 would prove nothing)
    priced_model(gateway, cookie_setting_upstream.url.replace("127.0.0.1", "localhost") + "/v1")
    alice, bob = customer(gateway, "alice@example.com"), customer(gateway, "bob@example.com")
    hello = [{"role": "user", "content": "hello"}]
    gateway.client(alice.key).chat.completions.create(model=MODEL, messages=hello)
    gateway.client(bob.key).chat.completions.create(model=MODEL, messages=hello)
    list(gateway.client(bob.key).chat.completions.create(model=MODEL, messages=hello, stream=True))

    state: FakeOpenAIState = cookie_setting_upstream.app["state"]
    assert len(state.requests) == 3
    assert [r.headers.get("cookie") for r in state.requests] == [None, None, None]
