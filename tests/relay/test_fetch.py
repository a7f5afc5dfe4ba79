"""The SSRF-safe image fetcher (SEC-01, INP-05), against real aiohttp servers on loopback.

Every test runs with a guard on the event loop's ``sock_connect``: it records each address the fetcher
tries to connect to and lets through only the two test servers. Refused URLs must show no attempt at
all, so none of the internal addresses below is ever contacted, and refusals are asserted to be quick.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.support.servers import ServerThread
from tokenhub.errors import InvalidRequest
from tokenhub.relay.fetch import (
    USER_AGENT,
    ImageFetcher,
    PolicyResolver,
    _Blocked,
    private_ip_allowed,
    public_ip_allowed,
    sniff_image_type,
)

T = TypeVar("T")

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(50)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(50)
GIF = b"GIF89a" + bytes(50)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(50)
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(40)
IMAGES = {"png": ("image/png", PNG), "jpg": ("image/jpeg", JPEG), "gif": ("image/gif", GIF),
          "webp": ("image/webp", WEBP), "heic": ("image/heic", HEIC)}


# -- the image server ------------------------------------------------------------------------------

class ServerState:
    def __init__(self) -> None:
        self.hits: list[tuple[str, dict[str, str]]] = []  # (path and query, request headers)
        self.inflight = 0
        self.max_inflight = 0


STATE = web.AppKey("state", ServerState)


def hits(server: ServerThread) -> list[tuple[str, dict[str, str]]]:
    return server.app[STATE].hits


def create_image_app() -> web.Application:
    app = web.Application()
    st = app[STATE] = ServerState()

    @web.middleware
    async def record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        st.hits.append((request.path_qs, dict(request.headers)))
        return await handler(request)

    app.middlewares.append(record)

    async def image(request: web.Request) -> web.Response:
        mime, body = IMAGES[request.match_info["ext"]]
        return web.Response(body=body, content_type=mime)

    async def hops(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        delay = float(request.query.get("delay", "0"))
        await asyncio.sleep(delay)
        if n == 0:
            return web.Response(body=PNG, content_type="image/png")
        status = int(request.query.get("status", "302"))
        query = f"status={status}" + (f"&delay={delay}" if delay else "")
        return web.Response(status=status, headers={"Location": f"/hops/{n - 1}?{query}"})

    async def to(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": request.query["u"]})

    async def no_location(request: web.Request) -> web.Response:
        return web.Response(status=302)

    async def sized(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.Response(body=PNG + bytes(n - len(PNG)), content_type="image/png")

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            await resp.write(PNG)
            for _ in range(2000):
                await resp.write(bytes(4096))
        except Exception:  # the client hung up at its cap, as it should
            pass
        return resp

    async def typed(request: web.Request) -> web.Response:
        body = {"png": PNG, "html": b"<html>hi</html>"}[request.query.get("body", "png")]
        return web.Response(body=body, headers={"Content-Type": request.query["ct"]})

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), body=PNG, content_type="image/png")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "3")))
        return web.Response(body=PNG, content_type="image/png")

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            await resp.write(PNG)
            for _ in range(30):
                await asyncio.sleep(0.1)
                await resp.write(b"\x00")
        except Exception:
            pass
        return resp

    async def counted(request: web.Request) -> web.Response:
        st.inflight += 1
        st.max_inflight = max(st.max_inflight, st.inflight)
        try:
            await asyncio.sleep(0.15)
        finally:
            st.inflight -= 1
        return web.Response(body=PNG, content_type="image/png")

    app.router.add_get("/img.{ext}", image)
    app.router.add_get("/hops/{n}", hops)
    app.router.add_get("/to", to)
    app.router.add_get("/no-location", no_location)
    app.router.add_get("/sized/{n}", sized)
    app.router.add_get("/endless", endless)
    app.router.add_get("/typed", typed)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/trickle", trickle)
    app.router.add_get("/counted", counted)
    return app


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ServerThread, ServerThread]]:
    a = ServerThread(create_image_app(), shutdown_timeout=0.1).start()
    b = ServerThread(create_image_app(), shutdown_timeout=0.1).start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def a(servers: tuple[ServerThread, ServerThread]) -> ServerThread:
    hits(servers[0]).clear()
    return servers[0]


@pytest.fixture
def b(servers: tuple[ServerThread, ServerThread]) -> ServerThread:
    """A second server: the forbidden target of redirects and rebinding. It must never be hit."""
    hits(servers[1]).clear()
    return servers[1]


@pytest.fixture
def ports(servers: tuple[ServerThread, ServerThread]) -> set[int]:
    return {servers[0].port, servers[1].port}


# -- running the fetcher under the connection guard ------------------------------------------------

class Run:
    def __init__(self, allowed_ports: set[int]) -> None:
        self.allowed_ports = allowed_ports
        self.attempts: list[tuple[str, int]] = []
        self.fetcher: ImageFetcher | None = None

    def __call__(self, body: Callable[[ImageFetcher], Awaitable[T]], **kwargs: Any) -> T:
        async def main() -> T:
            loop = asyncio.get_running_loop()
            original = loop.sock_connect

            async def guarded(sock: socket.socket, address: Any) -> None:
                self.attempts.append((address[0], address[1]))
                if address[0] != "127.0.0.1" or address[1] not in self.allowed_ports:
                    raise ConnectionRefusedError("the test guard refuses this address")
                await original(sock, address)

            loop.sock_connect = guarded  # type: ignore[method-assign]
            self.fetcher = ImageFetcher(**kwargs)
            try:
                return await body(self.fetcher)
            finally:
                await self.fetcher.close()

        return asyncio.run(main())

    def fetch(self, url: str, **kwargs: Any) -> tuple[str, bytes]:
        return self(lambda f: f.fetch(url), **kwargs)

    def refused(self, url: str, *, within: float = 1.0, **kwargs: Any) -> InvalidRequest:
        started = time.monotonic()
        with pytest.raises(InvalidRequest) as info:
            self.fetch(url, **kwargs)
        assert time.monotonic() - started < within
        err = info.value
        assert err.status == 400 and err.param == "messages"
        assert err.to_openai()["error"]["type"] == "invalid_request_error"
        return err


@pytest.fixture
def run(ports: set[int]) -> Run:
    return Run(ports)


def only(ip: str, port: int) -> Callable[[Any, int], bool]:
    """A test policy: exactly one address and port is allowed."""
    return lambda addr, p: str(addr) == ip and p == port


class StubResolver(AbstractResolver):
    """Answers from a script: host -> list of answers, one answer (a list of (ip, port)) per call."""

    def __init__(self, script: dict[str, list[list[tuple[str, int]]]]) -> None:
        self.script = script
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.calls.append(host)
        answers = self.script[host]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return [ResolveResult(hostname=host, host=ip, port=p, family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for ip, p in answer]

    async def close(self) -> None:
        pass


# -- the happy path (allow_private=True, on loopback) ----------------------------------------------

@pytest.mark.parametrize("ext", sorted(IMAGES))
def test_serves_each_image_format(run: Run, a: ServerThread, ext: str):
    assert run.fetch(f"{a.url}/img.{ext}", allow_private=True) == IMAGES[ext]
    assert run.attempts == [("127.0.0.1", a.port)]


def test_sends_a_plain_user_agent_and_no_client_headers(run: Run, a: ServerThread):
    run.fetch(f"{a.url}/img.png", allow_private=True)
    (_, headers), = hits(a)
    assert headers["User-Agent"] == USER_AGENT
    assert headers.get("Accept-Encoding") == "identity"
    assert not {"Authorization", "Cookie", "X-Api-Key", "X-Forwarded-For"} & set(headers)


def test_the_sniffed_type_wins_over_a_wrong_image_content_type(run: Run, a: ServerThread):
    assert run.fetch(f"{a.url}/typed?ct=image/jpeg", allow_private=True) == ("image/png", PNG)
    assert run.fetch(f"{a.url}/typed?ct=image/jpg", allow_private=True) == ("image/png", PNG)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_follows_a_redirect_chain_of_two(run: Run, a: ServerThread, status: int):
    assert run.fetch(f"{a.url}/hops/2?status={status}", allow_private=True) == ("image/png", PNG)
    assert [path for path, _ in hits(a)] == [f"/hops/2?status={status}", f"/hops/1?status={status}",
                                                   f"/hops/0?status={status}"]


def test_follows_exactly_max_redirects(run: Run, a: ServerThread):
    assert run.fetch(f"{a.url}/hops/3", allow_private=True) == ("image/png", PNG)


def test_refuses_a_fourth_redirect(run: Run, a: ServerThread):
    err = run.refused(f"{a.url}/hops/4", allow_private=True)
    assert "more than 3 redirects" in err.message
    assert len(hits(a)) == 4  # the image at the end was never requested


def test_max_redirects_zero_refuses_any_redirect(run: Run, a: ServerThread):
    run.refused(f"{a.url}/hops/1", allow_private=True, max_redirects=0)


def test_refuses_a_redirect_without_location(run: Run, a: ServerThread):
    run.refused(f"{a.url}/no-location", allow_private=True)


def test_refuses_oversize_by_content_length(run: Run, a: ServerThread):
    assert run.fetch(f"{a.url}/sized/1000", allow_private=True, max_bytes=1000)[1] == PNG + bytes(1000 - len(PNG))
    err = run.refused(f"{a.url}/sized/1001", allow_private=True, max_bytes=1000)
    assert "larger than 1000 bytes" in err.message


def test_refuses_oversize_while_streaming_without_content_length(run: Run, a: ServerThread):
    # 8 MB would follow; the fetcher must stop reading shortly after 10 kB
    err = run.refused(f"{a.url}/endless", allow_private=True, max_bytes=10_000)
    assert "larger than 10000 bytes" in err.message


@pytest.mark.parametrize("content_type", ["text/html", "application/octet-stream", "image/svg+xml",
                                          "application/json", "image/tiff", "image/png-but-not"])
def test_refuses_other_content_types(run: Run, a: ServerThread, content_type: str):
    err = run.refused(f"{a.url}/typed?ct={content_type}", allow_private=True)
    assert "not a PNG, JPEG, WebP, GIF or HEIC/HEIF image" in err.message


def test_refuses_a_body_that_is_not_an_image(run: Run, a: ServerThread):
    err = run.refused(f"{a.url}/typed?ct=image/png&body=html", allow_private=True)
    assert "body is not" in err.message
    assert "html" not in err.message  # never echo the fetched body


@pytest.mark.parametrize("code", [404, 403, 500, 204])
def test_refuses_non_2xx_and_empty(run: Run, a: ServerThread, code: int):
    run.refused(f"{a.url}/status/{code}", allow_private=True)


def test_refuses_a_server_slower_than_the_deadline(run: Run, a: ServerThread):
    err = run.refused(f"{a.url}/slow?s=3", allow_private=True, timeout=0.3)
    assert "longer than 0.3 s" in err.message


def test_the_deadline_covers_a_trickling_body(run: Run, a: ServerThread):
    run.refused(f"{a.url}/trickle", allow_private=True, timeout=0.5)


def test_the_deadline_covers_the_whole_redirect_chain(run: Run, a: ServerThread):
    # each hop answers well within the deadline; together they exceed it
    err = run.refused(f"{a.url}/hops/3?delay=0.3", allow_private=True, timeout=0.75)
    assert "longer than 0.75 s" in err.message
    assert len(hits(a)) >= 2  # several hops were followed (the third one too, unless the machine is very busy)


# -- the default policy refuses every internal target, before connecting ---------------------------

LOOPBACK_FORMS = [
    "http://127.0.0.1:{port}/img.png",
    "http://127.0.0.2:{port}/img.png",
    "http://localhost:{port}/img.png",
    "http://LOCALHOST:{port}/img.png",
    "http://2130706433:{port}/img.png",
    "http://0177.0.0.1:{port}/img.png",
    "http://0x7f000001:{port}/img.png",
    "http://0x7f.1:{port}/img.png",
    "http://127.1:{port}/img.png",
    "http://[::1]:{port}/img.png",
    "http://[::ffff:127.0.0.1]:{port}/img.png",
    "http://[::ffff:7f00:1]:{port}/img.png",
    "http://[::127.0.0.1]:{port}/img.png",
    "http://[2002:7f00:1::]:{port}/img.png",
    "http://[64:ff9b::7f00:1]:{port}/img.png",
    "http://0.0.0.0:{port}/img.png",
    "http://0:{port}/img.png",
    "http://[::]:{port}/img.png",
]


@pytest.mark.parametrize("template", LOOPBACK_FORMS)
def test_default_policy_refuses_the_loopback_server_in_every_spelling(run: Run, a: ServerThread, template: str):
    err = run.refused(template.format(port=a.port))
    assert "not allowed" in err.message
    assert run.attempts == [] and hits(a) == []
    if "localhost" in template.lower():
        assert "127.0.0.1" not in err.message and "::1" not in err.message  # never the resolved address


def test_a_fully_qualified_localhost_is_refused_without_connecting(run: Run, a: ServerThread):
    # depending on the resolver "localhost." is loopback (refused by address) or unknown (not found)
    run.refused(f"http://localhost.:{a.port}/img.png")
    assert run.attempts == [] and hits(a) == []


INTERNAL_TARGETS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/a.png",
    "http://172.16.0.1/a.png",
    "http://172.31.255.255/a.png",
    "http://192.168.1.1/a.png",
    "http://100.64.0.1/a.png",
    "http://100.100.100.200/latest/meta-data/",
    "http://192.0.0.1/a.png",
    "http://198.18.0.1/a.png",
    "http://224.0.0.1/a.png",
    "http://239.255.255.250/a.png",
    "http://240.0.0.1/a.png",
    "http://255.255.255.255/a.png",
    "https://10.1.2.3:8443/a.png",
    "http://[fd00::1]/a.png",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fc00::1]/a.png",
    "http://[fe80::1]/a.png",
    "http://[fe80::1%25eth0]/a.png",
    "http://[fec0::1]/a.png",
    "http://[ff02::1]/a.png",
    "http://[::ffff:169.254.169.254]/a.png",
    "http://[::ffff:a00:1]/a.png",
    "http://[2002:a9fe:a9fe::]/a.png",  # 6to4 of 169.254.169.254
    "http://[2002:c0a8:101::1]/a.png",  # 6to4 of 192.168.1.1
    "http://[64:ff9b::a9fe:a9fe]/a.png",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a00:1]/a.png",  # local-use NAT64
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/a.png",  # Teredo
    "http://2852039166/latest/meta-data/",  # 169.254.169.254 in decimal
    "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/",
    "http://012.0.0.1/a.png",  # octal 10.0.0.1
]


@pytest.mark.parametrize("url", INTERNAL_TARGETS)
def test_default_policy_refuses_internal_addresses_without_connecting(run: Run, url: str):
    err = run.refused(url, within=0.5)
    assert "not allowed" in err.message
    assert run.attempts == []


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "ftp://example.com/a.png",
    "gopher://127.0.0.1:6379/_INFO",
    "dict://127.0.0.1:11211/stats",
    "data:image/png;base64,iVBORw0KGgo=",
    "javascript:alert(1)",
    "ws://example.com/a.png",
    "//example.com/a.png",
    "example.com/a.png",
    "http:///a.png",
    "",
])
def test_refuses_other_schemes_and_hostless_urls(run: Run, url: str):
    run.refused(url, within=0.5)
    assert run.attempts == []


@pytest.mark.parametrize("userinfo", ["user:pass@", "user@", ":pass@"])
def test_refuses_credentials_in_the_url(run: Run, a: ServerThread, userinfo: str):
    err = run.refused(f"http://{userinfo}127.0.0.1:{a.port}/img.png", allow_private=True)
    assert "credentials" in err.message
    assert run.attempts == [] and hits(a) == []


def test_refuses_absurdly_long_urls(run: Run):
    run.refused("http://example.com/" + "a" * 10_000, within=0.5)
    assert run.attempts == []


def test_allow_private_still_refuses_metadata_multicast_and_unspecified(run: Run, a: ServerThread):
    for url in ["http://169.254.169.254/", "http://[fe80::1]/", "http://0.0.0.0:{port}/img.png",
                "http://224.0.0.1/", "http://255.255.255.255/", "http://[::ffff:169.254.169.254]/"]:
        run.refused(url.format(port=a.port), allow_private=True, within=0.5)
    assert run.attempts == [] and hits(a) == []


# -- redirects are re-checked at every hop -----------------------------------------------------------

def redirect_targets(b: ServerThread, a: ServerThread) -> list[str]:
    return [
        f"http://127.0.0.1:{b.port}/img.png",  # loopback, another port
        f"http://localhost:{b.port}/img.png",  # a name that resolves to loopback
        f"http://[::1]:{b.port}/img.png",
        f"http://2130706433:{a.port}/img.png",  # odd spelling of the allowed address itself
        f"http://user:pass@127.0.0.1:{a.port}/img.png",  # credentials appear on the hop
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/a.png",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
    ]


def test_a_redirect_to_an_internal_target_is_refused(run: Run, a: ServerThread, b: ServerThread):
    # The first hop is "public" by test policy: exactly 127.0.0.1 at server A's port.
    for target in redirect_targets(b, a):
        run.attempts.clear()
        hits(a).clear()
        err = run.refused(f"{a.url}/to?u={target}", ip_policy=only("127.0.0.1", a.port))
        assert "redirected to a URL that is not allowed" in err.message, target
        assert str(b.port) not in err.message and "169.254" not in err.message  # the target is not echoed
        assert run.attempts == [("127.0.0.1", a.port)], target
        assert len(hits(a)) == 1, target
    assert hits(b) == []


def test_a_redirect_deeper_in_the_chain_is_checked_too(run: Run, a: ServerThread, b: ServerThread):
    inner = f"/to?u=http://127.0.0.1:{b.port}/img.png".replace("?", "%3F").replace("=", "%3D")
    run.refused(f"{a.url}/to?u={inner}", ip_policy=only("127.0.0.1", a.port))
    assert len(hits(a)) == 2 and hits(b) == []


def test_allow_private_refuses_a_redirect_to_the_metadata_address(run: Run, a: ServerThread):
    run.refused(f"{a.url}/to?u=http://169.254.169.254/latest/meta-data/", allow_private=True)
    assert run.attempts == [("127.0.0.1", a.port)]


# -- resolution: checked, and the checked address is the one connected to ----------------------------

def test_the_connector_uses_the_filtering_resolver_without_a_dns_cache(run: Run, a: ServerThread):
    async def body(fetcher: ImageFetcher) -> None:
        await fetcher.fetch(f"{a.url}/img.png")
        session = fetcher._session
        assert session is not None and fetcher.resolver is not None
        connector = session.connector
        assert connector is not None
        assert connector._resolver is fetcher.resolver  # type: ignore[attr-defined]
        assert isinstance(fetcher.resolver, PolicyResolver)
        assert fetcher.resolver.policy is private_ip_allowed
        assert connector.use_dns_cache is False and connector.force_close is True
        assert session.trust_env is False

    run(body, allow_private=True)
    assert ImageFetcher().ip_policy is public_ip_allowed


@pytest.mark.parametrize("host", ["localhost", "0x7f000001", "2130706433", "0177.0.0.1", "127.1", "0x7f.1"])
def test_the_os_resolver_output_is_checked_by_ip(host: str):
    """Even if a literal slipped past the URL check, the OS's reading of it is checked by address."""
    async def main() -> None:
        resolver = PolicyResolver(public_ip_allowed)
        try:
            with pytest.raises(_Blocked):
                await resolver.resolve(host, 80, socket.AF_UNSPEC)
            loose = PolicyResolver(private_ip_allowed)
            assert {r["host"] for r in await loose.resolve(host, 80, socket.AF_INET)} == {"127.0.0.1"}
            await loose.close()
        finally:
            await resolver.close()

    asyncio.run(main())


def test_the_resolver_keeps_only_allowed_addresses():
    stub = StubResolver({"mixed.test": [[("10.0.0.1", 80), ("93.184.215.14", 80), ("fd00::1", 80),
                                          ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", 80)]],
                         "private.test": [[("10.0.0.1", 80), ("169.254.169.254", 80)]]})

    async def main() -> None:
        resolver = PolicyResolver(public_ip_allowed, stub)
        kept = await resolver.resolve("mixed.test", 80, socket.AF_UNSPEC)
        assert [r["host"] for r in kept] == ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
        with pytest.raises(_Blocked):
            await resolver.resolve("private.test", 80, socket.AF_UNSPEC)

    asyncio.run(main())


def test_connects_only_to_the_checked_address(run: Run, a: ServerThread, b: ServerThread):
    # "img.test" resolves to two addresses; the policy admits only server A's. B comes first in the
    # answer: had the connector received it, it would have tried it first.
    stub = StubResolver({"img.test": [[("127.0.0.1", b.port), ("127.0.0.1", a.port)]]})
    result = run.fetch(f"http://img.test:{a.port}/img.png", ip_policy=only("127.0.0.1", a.port), resolver=stub)
    assert result == ("image/png", PNG)
    assert run.attempts == [("127.0.0.1", a.port)]
    assert hits(b) == []
    (_, headers), = hits(a)
    assert headers["Host"] == f"img.test:{a.port}"  # the name is kept, only the address is pinned


def test_a_name_resolving_only_to_refused_addresses_is_refused_without_connecting(run: Run, a: ServerThread):
    stub = StubResolver({"evil.test": [[("127.0.0.1", a.port), ("::1", a.port)]]})
    err = run.refused(f"http://evil.test:{a.port}/img.png", resolver=stub)
    assert "'evil.test'" in err.message and "not allowed" in err.message and "127.0.0.1" not in err.message
    assert run.attempts == [] and hits(a) == []


def test_dns_rebinding_between_fetches_is_refused(run: Run, a: ServerThread, b: ServerThread):
    # TTL-0 rebinding: the first answer is allowed, the next one is not (B stands in for an internal host).
    stub = StubResolver({"rebind.test": [[("127.0.0.1", a.port)], [("127.0.0.1", b.port)]]})

    async def body(fetcher: ImageFetcher) -> None:
        assert await fetcher.fetch(f"http://rebind.test:{a.port}/img.png") == ("image/png", PNG)
        with pytest.raises(InvalidRequest, match="not allowed"):
            await fetcher.fetch(f"http://rebind.test:{a.port}/img.png")

    run(body, ip_policy=only("127.0.0.1", a.port), resolver=stub)
    assert stub.calls == ["rebind.test", "rebind.test"]
    assert run.attempts == [("127.0.0.1", a.port)] and hits(b) == []


def test_dns_rebinding_on_a_redirect_hop_is_refused(run: Run, a: ServerThread, b: ServerThread):
    stub = StubResolver({"rebind.test": [[("127.0.0.1", a.port)], [("127.0.0.1", b.port)]]})
    run.refused(f"http://rebind.test:{a.port}/hops/1", ip_policy=only("127.0.0.1", a.port), resolver=stub)
    assert stub.calls == ["rebind.test", "rebind.test"]
    assert run.attempts == [("127.0.0.1", a.port)] and hits(b) == []


# -- the policy itself -------------------------------------------------------------------------------

@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111",
                                "2002:808:808::1", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(ip: str):
    assert public_ip_allowed(ipaddress.ip_address(ip), 443)


@pytest.mark.parametrize("ip", ["0.0.0.0", "0.1.2.3", "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1",
                                "192.168.0.1", "169.254.169.254", "100.64.0.1", "100.127.255.255", "224.0.0.1",
                                "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.51.100.1", "203.0.113.1",
                                "::", "::1", "::ffff:127.0.0.1", "::ffff:8.8.8.8", "::127.0.0.1", "fc00::1",
                                "fd00:ec2::254", "fe80::1", "fe80::1%eth0", "febf::1", "fec0::1", "ff02::1",
                                "ff0e::1", "2001:db8::1", "2002:7f00:1::", "2002:a00:1::", "64:ff9b::7f00:1",
                                "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b:1::1", "64:ff9b:1::808:808", "2001::1", "100::1"])
def test_internal_and_special_addresses_are_refused(ip: str):
    assert not public_ip_allowed(ipaddress.ip_address(ip), 80)


def test_sniffing():
    for mime, body in IMAGES.values():
        assert sniff_image_type(body[:32]) == mime
    assert sniff_image_type(b"\x00\x00\x00\x18ftypmif1") == "image/heif"
    assert sniff_image_type(b"\x00\x00\x00\x18ftypisom") is None  # an MP4
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WAVE") is None
    assert sniff_image_type(b"<svg xmlns") is None
    assert sniff_image_type(b"") is None


# -- fetch_all -------------------------------------------------------------------------------------

def test_fetch_all_dedups_and_bounds_concurrency(run: Run, a: ServerThread):
    a.app[STATE].max_inflight = 0
    urls = [f"{a.url}/counted?i={i}" for i in range(10)]
    started = time.monotonic()
    result = run(lambda f: f.fetch_all(urls + urls[:5]), allow_private=True)
    assert list(result) == urls and all(v == ("image/png", PNG) for v in result.values())
    assert len(hits(a)) == 10
    assert a.app[STATE].max_inflight == 4
    assert time.monotonic() - started < 2.0


def test_fetch_all_raises_the_first_refusal(run: Run, a: ServerThread):
    with pytest.raises(InvalidRequest, match="not allowed"):
        run(lambda f: f.fetch_all([f"{a.url}/slow?s=2", "http://169.254.169.254/a.png"]), allow_private=True, timeout=5)
    assert run.attempts == [("127.0.0.1", a.port)]
