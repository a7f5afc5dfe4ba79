"""The ``#fake:`` directives the fake Gemini understands."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tokenhub.simulator.common.directives import Directives, directive_names
from tokenhub.simulator.gemini.errors import GeminiError, invalid


@dataclass
class Scenario(Directives):
    """The parsed ``#fake:`` directives of a request (see the package docstring)."""

    tokens: int | None = None
    tools: bool = False
    thinking: int = 0
    cached: int = 0
    bad_usage: str | None = None
    max_tokens: bool = False
    safety: bool = False
    recitation: bool = False
    blocked_prompt: bool = False
    malformed_call: bool = False
    strict_roles: bool = False
    status: int | None = None
    retry_after: str | None = None
    error_mid: bool = False
    reset: bool = False
    truncate: bool = False
    slow_first: float = 0.0
    delay: float | None = None
    hang: bool = False
    lf: bool = False

    @classmethod
    def directive_error(cls, message: str, code: str) -> GeminiError:
        return invalid(message)


def iter_directive_names() -> Iterator[str]:
    """Names accepted after ``#fake:`` (for CLI help)."""
    return directive_names(Scenario)
