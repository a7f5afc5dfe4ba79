"""The checks every request passes first: JSON body, API key, ``anthropic-version``."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from tokenhub.simulator.anthropic.errors import FakeAPIError, invalid
from tokenhub.simulator.anthropic.state import FakeAnthropicState
from tokenhub.simulator.anthropic.validation import validate_common
from tokenhub.simulator.common.recording import read_json

VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


async def read_body(request: web.Request, state: FakeAnthropicState) -> Any:
    recorded, _ = await read_json(request, state)
    return recorded.json


def check_json(parsed: Any, state: FakeAnthropicState) -> None:
    if parsed is None and state.requests[-1].raw.strip() != b"null":
        raise invalid("There was an error parsing the body of your request. Please ensure that the body is valid JSON.")


def check_auth(request: web.Request, state: FakeAnthropicState) -> None:
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = token.strip()
    if state.api_keys is None:
        return
    if not key:
        raise FakeAPIError(401, "x-api-key header is required", "authentication_error")
    if key not in state.api_keys:
        raise FakeAPIError(401, "invalid x-api-key", "authentication_error")


def check_version(request: web.Request) -> None:
    version = request.headers.get("anthropic-version")
    if not version:
        raise invalid("anthropic-version: header is required")
    if not VERSION_RE.match(version.strip()):
        raise invalid(f"anthropic-version: invalid version: {version!r}")


async def checked_body(request: web.Request, state: FakeAnthropicState, *, need_max_tokens: bool) -> dict[str, Any]:
    """Read and record the request, then run the auth, version, JSON and body checks in the API's order."""
    parsed = await read_body(request, state)
    check_auth(request, state)
    check_version(request)
    check_json(parsed, state)
    return validate_common(parsed, state, need_max_tokens=need_max_tokens)
