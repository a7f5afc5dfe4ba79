"""Scrubbing upstream text before a client sees it: credentials and internal addresses out, the reason kept.

An upstream's error message may quote the key it was sent (often masked: ``sk-UPSTR*****-123``), its
own ``host:port`` or URLs of the operator's network. ``scrub`` removes, besides the exact strings it
is given (a channel's key and base URL):

* anything key-shaped: ``sk-…``/``sk-ant-…``/``pk-…``/``rk-…``, Google's ``AIza…``, ``Bearer …``,
  ``key=…``/``token: …`` style assignments, long hex or base64 runs that mix letters and digits, and
  masked forms (a word with ``***`` in it);
* the given hosts, with or without a port, and the host names of the given URLs;
* http(s) URLs that point at a loopback, private, link-local or otherwise internal address
  (an IP literal of those, ``localhost``, or a single-label host name), and bare private IPs.

Public URLs (documentation links) and the rest of the message stay.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Iterable
from urllib.parse import urlsplit

REDACTED = "[redacted]"

_KEY_SHAPED = re.compile(
    r"""(?ix)
    \b(?:sk|pk|rk)-[A-Za-z0-9_\-*.]{3,}[A-Za-z0-9_\-*]          # OpenAI, Anthropic (sk-ant-…), DeepSeek, … and their masked forms
    | \bAIza[A-Za-z0-9_\-*]{8,}                     # Google API keys
    | \bBearer\s+[^\s"',;]+                         # an Authorization header's value
    | \b(?:api[_-]?key|x-api-key|access[_-]?key|secret(?:[_-]?key)?|token|password|authorization)
      (\s*[:=]\s*|\s+)["']?(?=[^\s"',;]*[0-9*])[^\s"',;]{6,}   # key=…, token: …, "api key abc123…"
    | [^\s"',;()\[\]{}<>]*\*{3,}[^\s"',;()\[\]{}<>]*   # anything masked: x****y
    | \b[0-9a-f]{32,}\b                             # long hex runs (hashes, keys)
    | (?<![A-Za-z0-9+/_\-])(?=[A-Za-z0-9+/_\-]*[0-9])(?=[A-Za-z0-9+/_\-]*[A-Za-z])[A-Za-z0-9+/_\-]{40,}={0,2}
                                                    # long base64-ish runs with letters and digits
    """
)
_URL = re.compile(r"(?i)\b(?:https?|wss?)://[^\s\"'<>)\]}]+")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b")


def _internal_host(host: str) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    if not host or host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".lan")) or "." not in host:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not ip.is_global


def _hosts(hosts: Iterable[str]) -> list[str]:
    """Host names (and host:port) to remove: given as names or as URLs; longest first."""
    found: set[str] = set()
    for value in hosts:
        value = (value or "").strip()
        if not value:
            continue
        if "://" in value:
            try:
                parts = urlsplit(value)
                if parts.hostname:
                    found.add(parts.hostname)
                if parts.netloc:
                    found.add(parts.netloc.rsplit("@", 1)[-1])
            except ValueError:
                continue
        else:
            found.add(value)
    return sorted((h for h in found if len(h) >= 3), key=len, reverse=True)


def scrub(text: str, *, secrets: Iterable[str] = (), hosts: Iterable[str] = ()) -> str:
    """``text`` without credentials and internal addresses (see the module docstring)."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    host_names = _hosts(hosts)

    def url(match: re.Match[str]) -> str:
        found = match.group(0)
        try:
            host = urlsplit(found).hostname or ""
        except ValueError:
            return REDACTED
        if _internal_host(host) or any(host == h.lower() for h in host_names):
            return REDACTED
        return found

    text = _URL.sub(url, text)
    for host in host_names:
        text = re.sub(r"(?<![\w.-])" + re.escape(host) + r"(?::\d{1,5})?(?![\w-])", REDACTED, text, flags=re.IGNORECASE)
    text = _IPV4.sub(lambda m: REDACTED if _internal_host(m.group(0).split(":")[0]) else m.group(0), text)
    return _KEY_SHAPED.sub(REDACTED, text)
