"""Client fields that must not be forwarded: those that name an upstream or a credential.

Some upstreams (LiteLLM-style proxies, self-hosted servers) read ``api_base``, ``base_url``,
``api_key`` or ``user_config`` from the request body and would send the request where, or as whom,
the client says. The gateway chooses the upstream and the key, so these fields are dropped from
every request body before it is forwarded — at any depth, in every protocol. Only the key names of
a JSON Schema's property maps (``properties`` and the like, e.g. a tool parameter called
``api_key``) are the client's data and stay.
"""

from __future__ import annotations

from typing import Any, Final

UPSTREAM_FIELDS: Final = frozenset({"api_base", "base_url", "api_key", "user_config"})
SCHEMA_MAPS: Final = frozenset({"properties", "patternProperties", "$defs", "definitions"})  # keys are names, not options

_UNCHANGED: Final[Any] = object()


def _clean(value: Any, names: bool) -> Any:
    """``value`` without the fields (``_UNCHANGED`` when it has none, so nothing is copied then)."""
    if isinstance(value, dict):
        out: dict[str, Any] | None = None
        for i, (key, child) in enumerate(value.items()):
            if not names and key in UPSTREAM_FIELDS:
                if out is None:
                    out = dict(list(value.items())[:i])
                continue
            cleaned = _clean(child, not names and key in SCHEMA_MAPS) if isinstance(child, (dict, list)) else _UNCHANGED
            if cleaned is not _UNCHANGED and out is None:
                out = dict(list(value.items())[:i])
            if out is not None:
                out[key] = child if cleaned is _UNCHANGED else cleaned
        return _UNCHANGED if out is None else out
    if isinstance(value, list):
        items: list[Any] | None = None
        for i, child in enumerate(value):
            cleaned = _clean(child, False) if isinstance(child, (dict, list)) else _UNCHANGED
            if cleaned is not _UNCHANGED and items is None:
                items = value[:i]
            if items is not None:
                items.append(child if cleaned is _UNCHANGED else cleaned)
        return _UNCHANGED if items is None else items
    return _UNCHANGED


def _mentions(value: Any) -> bool:
    """Whether any object in ``value`` has one of the fields as a key (schema property names included):
    the cheap test every request pays; only a body that passes it is rebuilt."""
    if type(value) is dict:
        if not UPSTREAM_FIELDS.isdisjoint(value):
            return True
        children: Any = value.values()
    else:
        children = value
    for child in children:
        kind = type(child)
        if (kind is dict or kind is list) and _mentions(child):
            return True
    return False


def without_upstream_fields(body: Any) -> Any:
    """``body`` without the fields that name an upstream or a credential; the same object when it has none."""
    if not isinstance(body, (dict, list)) or not _mentions(body):
        return body
    cleaned = _clean(body, False)
    return body if cleaned is _UNCHANGED else cleaned
