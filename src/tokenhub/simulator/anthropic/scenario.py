"""The ``#fake:`` directives the fake Anthropic understands."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tokenhub.simulator.anthropic.errors import FakeAPIError, invalid
from tokenhub.simulator.common.directives import Directives, directive_names


@dataclass
class Scenario(Directives):
    """The parsed ``#fake:`` directives of a request (see the package docstring)."""

    tokens: int | None = None
    tools: bool = False
    tool_noargs: bool = False
    thinking: int | None = None
    redacted_thinking: bool = False
    max_tokens: bool = False
    stop_sequence: bool = False
    refusal: bool = False
    pause_turn: bool = False
    cache_read: int = 0
    cache_write: int = 0
    web_search: int = 0
    web_fetch: int = 0
    bad_usage: str | None = None
    status: int | None = None
    retry_after: str | None = None
    error_mid: bool = False
    reset: bool = False
    truncate: bool = False
    slow_first: float = 0.0
    delay: float | None = None
    hang: bool = False
    ping: bool = False
    crlf: bool = False
    echo_model: str | None = None

    @classmethod
    def directive_error(cls, message: str, code: str) -> FakeAPIError:
        return invalid(message)


def iter_directive_names() -> Iterator[str]:
    """Names accepted after ``#fake:`` (for CLI help)."""
    return directive_names(Scenario)
