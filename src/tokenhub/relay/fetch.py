"""Download images that clients give by URL, without letting a client reach inside our network (SSRF).

Some upstreams (Gemini) only take image bytes, so the gateway fetches ``image_url`` URLs on the client's
behalf. Every fetch goes through :class:`ImageFetcher`, which enforces, per hop:

* the URL: ``http``/``https`` only, no ``user:pass@``, a host present, a sane length;
* the address: the host is resolved ONCE, inside the connector, by :class:`PolicyResolver`, which drops
  every resolved address the IP policy refuses; aiohttp then connects to exactly the addresses that
  were kept (``use_dns_cache=False``, no second lookup, so DNS rebinding between check and connect is
  impossible). The Host header and TLS SNI still carry the hostname.
  aiohttp does NOT call the resolver for hosts it considers IP literals (anything with ``:`` or only
  digits and dots), so those are parsed and checked here, before any request, with the same policy;
  the odd IPv4 spellings (``2130706433``, ``0177.0.0.1``, ``0x7f000001``, ``127.1``) are decoded the
  way ``inet_aton``/the OS resolver would decode them, checked, and refused in any case;
* redirects: followed by hand (``allow_redirects=False``), at most ``max_redirects``, each hop
  re-checked from scratch (scheme, credentials, literal IP, resolved IP);
* the response: 2xx only, an image Content-Type, a Content-Length within the cap and the streamed
  body counted against the cap, magic bytes of an image format, all under one total deadline.

The default IP policy (:func:`public_ip_allowed`) admits only globally routable unicast addresses:
loopback, private, link-local (cloud metadata), CGNAT, multicast, unspecified, reserved, broadcast,
documentation, benchmarking, unique-local and site-local addresses are refused; so are 6to4 and NAT64
addresses embedding one of those, and IPv4-mapped, IPv4-compatible and Teredo addresses altogether.

Refusals raise :class:`tokenhub.errors.InvalidRequest` (400, param ``messages``). Messages name the host
the client wrote and never a resolved address, a redirect target or any of the fetched body.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from tokenhub.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPPolicy = Callable[[IPAddress, int], bool]
"""``policy(ip, port) -> allowed``; called for every literal and every resolved address."""

USER_AGENT = "TokenHub-ImageFetcher/1.0"
ALLOWED_SCHEMES = frozenset({"http", "https"})
ALLOWED_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif", "image/heic", "image/heif"})
CONTENT_TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_URL_LENGTH = 8192
_CHUNK = 64 * 1024

_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", includes 0.0.0.0 (reaches localhost on Linux)
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # CGNAT (also Alibaba metadata 100.100.100.200)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes broadcast 255.255.255.255
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/8",  # unspecified, loopback, IPv4-compatible, IPv4-mapped, reserved (NAT64 64:ff9b::/96 is handled first)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments: Teredo 2001::/32, ORCHID, benchmarking, ...
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique-local, includes fd00:ec2::254 (AWS metadata over IPv6)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def public_ip_allowed(ip: IPAddress, port: int = 0) -> bool:
    """The default, strict policy: only globally routable unicast addresses, any port."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:  # zone ids only make sense for link-local and friends
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not public_ip_allowed(embedded, port):
            return False
        if ip in _NAT64:
            return True  # DNS64 synthesizes these for public IPv4 hosts; the embedded address was checked
        # ::/8 also refuses IPv4-mapped and IPv4-compatible forms outright, even of public addresses:
        # resolvers hand out plain IPv4 for those, so only a crafted literal looks like this
        if ip.teredo is not None or any(ip in net for net in _BLOCKED_V6):
            return False
    elif any(ip in net for net in _BLOCKED_V4):
        return False
    return ip.is_global and not ip.is_multicast and not ip.is_unspecified and not ip.is_link_local


def private_ip_allowed(ip: IPAddress, port: int = 0) -> bool:
    """``allow_private=True``: loopback, private, CGNAT and unique-local are fine too; still never
    link-local (cloud metadata), multicast, unspecified or broadcast."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return private_ip_allowed(embedded, port)
    return not (
        ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip == ipaddress.IPv4Address("255.255.255.255")
    )


class _Blocked(Exception):
    """Raised by the resolver when no resolved address survives the policy. Deliberately not an
    ``OSError``, so aiohttp lets it through unchanged instead of trying other addresses or wrapping it."""


class PolicyResolver(AbstractResolver):
    """Resolve with an inner resolver, keep only the addresses the policy allows, refuse if none remain.

    The connector connects to exactly what this returns, so the address checked is the address used.
    """

    def __init__(self, policy: IPPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner
        self._owns_inner = inner is None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()
        results = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        for result in results:
            try:
                ip = ipaddress.ip_address(result["host"])
            except ValueError:
                continue  # not an address we can reason about
            if self.policy(ip, result["port"]):
                kept.append(result)
        if not kept:
            raise _Blocked(host)
        return kept

    async def close(self) -> None:
        if self._inner is not None and self._owns_inner:
            await self._inner.close()


def _looks_like_ip_literal(host: str) -> bool:
    """aiohttp's own test (``helpers.is_ip_address``): such hosts skip the resolver entirely."""
    return ":" in host or host.replace(".", "").isdigit()


def _literal_ip(host: str) -> tuple[IPAddress | None, bool]:
    """The address a host spells literally, and whether the spelling is canonical.

    ``(None, True)`` for a DNS name. Raises ``ValueError`` for a host aiohttp would treat as an IP
    literal but that is not one.
    """
    try:
        return ipaddress.ip_address(host), True
    except ValueError:
        pass
    if ":" not in host:
        try:  # the legacy spellings the C library accepts: 2130706433, 0177.0.0.1, 0x7f.1, 127.1
            return ipaddress.IPv4Address(socket.inet_aton(host)), False
        except OSError:
            pass
    if _looks_like_ip_literal(host):
        raise ValueError(host)
    return None, True


def _display_host(url: URL) -> str:
    host = url.host or ""
    return host if len(host) <= 100 else host[:100] + "..."


class ImageFetcher:
    """Fetch client-supplied image URLs safely. One instance per app; ``close()`` at shutdown.

    ``ip_policy`` and ``resolver`` (the inner resolver wrapped by the policy) are hooks for tests and
    operators; the defaults are strict. ``allow_private=True`` swaps in :func:`private_ip_allowed`.
    """

    def __init__(
        self,
        *,
        max_bytes: int = 20 * 1024 * 1024,
        timeout: float = 10.0,
        max_redirects: int = 3,
        allow_private: bool = False,
        concurrency: int = 4,
        ip_policy: IPPolicy | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.concurrency = max(1, concurrency)
        self.ip_policy: IPPolicy = ip_policy or (private_ip_allowed if allow_private else public_ip_allowed)
        self._inner_resolver = resolver
        self.resolver: PolicyResolver | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # -- session -------------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("ImageFetcher is closed")
        if self._session is None:
            self.resolver = PolicyResolver(self.ip_policy, self._inner_resolver)
            connector = aiohttp.TCPConnector(
                resolver=self.resolver,
                use_dns_cache=False,  # every connection resolves (and is checked) afresh
                force_close=True,  # no idle sockets to client-chosen hosts, no reuse across checks
                limit=max(self.concurrency * 2, 8),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),  # nothing carried between hops or fetches
                trust_env=False,  # never via an env proxy: the proxy would resolve, unchecked
                headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"},
            )
        return self._session

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.resolver is not None:
            await self.resolver.close()

    # -- checks --------------------------------------------------------------------------------

    def _refuse(self, host: str, reason: str) -> InvalidRequest:
        where = f"the image URL host {host!r}" if host else "the image URL"
        return InvalidRequest(f"Could not use {where}: {reason}.", param="messages", code="invalid_image_url")

    def _check_url(self, url: URL, shown: str, *, redirected: bool) -> None:
        """Everything that can be decided without the network. ``shown`` is the client's host."""
        what = "it redirected to a URL that is not allowed" if redirected else None
        if url.scheme not in ALLOWED_SCHEMES:
            raise self._refuse(shown, what or "only http and https URLs are allowed")
        if url.user is not None or url.password is not None:
            raise self._refuse(shown, what or "URLs with credentials are not allowed")
        host = url.raw_host
        if not host:
            raise self._refuse(shown, what or "the URL has no host")
        try:
            ip, canonical = _literal_ip(host)
        except ValueError:
            raise self._refuse(shown, what or "the host is not a valid address") from None
        if ip is None:
            return  # a DNS name: the connector's PolicyResolver checks what it resolves to
        if not canonical or not self.ip_policy(ip, url.port or 0):
            raise self._refuse(shown, what or "the address is not allowed")

    def _parse(self, url: str) -> URL:
        if not isinstance(url, str) or not url:
            raise self._refuse("", "the URL is empty")
        if len(url) > MAX_URL_LENGTH:
            raise self._refuse("", f"the URL is longer than {MAX_URL_LENGTH} characters")
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise self._refuse("", "the URL is not valid") from None
        return parsed

    # -- fetching ------------------------------------------------------------------------------

    async def fetch(self, url: str) -> tuple[str, bytes]:
        """Return ``(mime type, bytes)`` of the image at ``url`` or raise ``InvalidRequest``."""
        target = self._parse(url)
        shown = _display_host(target)
        self._check_url(target, shown, redirected=False)
        session = self._get_session()
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(session, target, shown)
        except TimeoutError:  # our deadline or aiohttp's (its timeouts subclass TimeoutError)
            raise self._refuse(shown, f"fetching the image took longer than {self.timeout:g} s") from None

    async def _fetch(self, session: aiohttp.ClientSession, url: URL, shown: str) -> tuple[str, bytes]:
        for hop in range(self.max_redirects + 1):
            if hop:
                self._check_url(url, shown, redirected=True)
            try:
                async with session.get(url, allow_redirects=False) as resp:
                    if resp.status in REDIRECT_STATUSES:
                        url = self._next_hop(resp, url, shown)
                        continue
                    return await self._read_image(resp, shown)
            except TimeoutError:
                raise  # reported by fetch() as a deadline
            except _Blocked:
                raise self._refuse(shown, self._blocked_reason(hop)) from None
            except aiohttp.ClientError as exc:
                if isinstance(exc.__cause__, _Blocked):  # should aiohttp ever start wrapping it
                    raise self._refuse(shown, self._blocked_reason(hop)) from None
                # exc's text may carry resolved addresses: never echo it
                raise self._refuse(shown, "the image could not be downloaded") from None
        raise self._refuse(shown, f"more than {self.max_redirects} redirects")

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST to a client-chosen URL (task callbacks) under the same address policy; no redirects.

        Returns the HTTP status, or raises ``InvalidRequest`` when the URL is refused or unreachable.
        """
        target = self._parse(url)
        shown = _display_host(target)
        self._check_url(target, shown, redirected=False)
        session = self._get_session()
        try:
            async with asyncio.timeout(self.timeout):
                async with session.post(target, data=body, headers=headers, allow_redirects=False) as resp:
                    await resp.read()
                    return resp.status
        except TimeoutError:
            raise self._refuse(shown, f"the request took longer than {self.timeout:g} s") from None
        except _Blocked:
            raise self._refuse(shown, self._blocked_reason(0)) from None
        except aiohttp.ClientError:
            raise self._refuse(shown, "the URL could not be reached") from None

    @staticmethod
    def _blocked_reason(hop: int) -> str:
        return "it redirected to a URL that is not allowed" if hop else "the host resolves to an address that is not allowed"

    def _next_hop(self, resp: aiohttp.ClientResponse, url: URL, shown: str) -> URL:
        location = resp.headers.get("Location")
        if not location:
            raise self._refuse(shown, f"the server answered HTTP {resp.status} without a Location")
        try:
            return url.join(URL(location))
        except (ValueError, TypeError):
            raise self._refuse(shown, "it redirected to a URL that is not allowed") from None

    async def _read_image(self, resp: aiohttp.ClientResponse, shown: str) -> tuple[str, bytes]:
        if not 200 <= resp.status < 300:
            raise self._refuse(shown, f"the server answered HTTP {resp.status}")
        declared = CONTENT_TYPE_ALIASES.get(resp.content_type, resp.content_type)
        if declared not in ALLOWED_CONTENT_TYPES:
            raise self._refuse(shown, "the response is not a PNG, JPEG, WebP, GIF or HEIC/HEIF image")
        too_big = f"the image is larger than {self.max_bytes} bytes"
        if resp.content_length is not None and resp.content_length > self.max_bytes:
            raise self._refuse(shown, too_big)
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self.max_bytes:
                raise self._refuse(shown, too_big)  # leaving the context closes the connection
        mime = sniff_image_type(bytes(body[:32]))
        if mime is None:
            raise self._refuse(shown, "the response body is not a PNG, JPEG, WebP, GIF or HEIC/HEIF image")
        return mime, bytes(body)

    async def fetch_all(self, urls: list[str]) -> dict[str, tuple[str, bytes]]:
        """Fetch each distinct URL once, ``concurrency`` at a time; the first refusal cancels the rest."""
        unique = list(dict.fromkeys(urls))
        gate = asyncio.Semaphore(self.concurrency)

        async def one(url: str) -> tuple[str, tuple[str, bytes]]:
            async with gate:
                return url, await self.fetch(url)

        tasks = [asyncio.ensure_future(one(url)) for url in unique]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return dict(results)

    async def __aenter__(self) -> ImageFetcher:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"heif"})


def sniff_image_type(head: bytes) -> str | None:
    """The image MIME type the first bytes announce, or None when they are no supported format."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIC_BRANDS:
            return "image/heic"
        if brand in _HEIF_BRANDS:
            return "image/heif"
    return None
