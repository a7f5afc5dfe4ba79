"""The ``#fake:`` directives the fake OpenAI understands."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tokenhub.simulator.common.directives import Directives, directive_names
from tokenhub.simulator.openai.errors import FakeAPIError


@dataclass
class Scenario(Directives):
    """The parsed ``#fake:`` directives of a request (see the package docstring)."""

    tokens: int | None = None
    length: bool = False
    content_finish: bool = False
    reasoning: int = 0
    tools: bool = False
    tool_whole: bool = False
    cached: int = 0
    deepseek_usage: bool = False
    usage_on_last: bool = False
    no_usage: bool = False
    bad_usage: str | None = None
    keepalive: bool = False
    crlf: bool = False
    status: int | None = None
    retry_after: str | None = None
    error_mid: bool = False
    reset: bool = False
    truncate: bool = False
    malformed: bool = False
    slow_first: float = 0.0
    delay: float | None = None
    hang: bool = False
    echo_model: str | None = None
    overreport: int = 0

    @classmethod
    def directive_error(cls, message: str, code: str) -> FakeAPIError:
        return FakeAPIError(400, message, param="messages", code=code)


def iter_directive_names() -> Iterator[str]:
    """Names accepted after ``#fake:`` (for CLI help)."""
    return directive_names(Scenario)
