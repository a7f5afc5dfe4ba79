"""Who is asking: the client address the login limits count, behind a trusted proxy or not.

X-Forwarded-For is believed only when the direct peer is a proxy named in ``TOKENHUB_TRUSTED_PROXIES``;
then the client is the right-most entry that is not itself a trusted proxy (each proxy appends the peer
it saw, so entries left of that one are whatever the client chose to send).
"""

from __future__ import annotations

import ipaddress
from typing import Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def client_address(request: web.Request, proxies: Sequence[Network]) -> str:
    peer_text = request.remote or "unknown"
    peer = _ip(peer_text)
    if peer is None or not proxies or not _trusted(peer, proxies):
        return str(peer) if peer is not None else peer_text
    hops = [hop for header in request.headers.getall("X-Forwarded-For", []) for hop in header.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            return hop.strip()[:64]  # not an address: count it as its own client rather than as the proxy
        client = address
        if not _trusted(address, proxies):
            break
    return str(client)
