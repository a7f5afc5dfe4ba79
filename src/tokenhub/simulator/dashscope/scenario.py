"""The ``#fake:`` directives the fake DashScope understands."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tokenhub.simulator.common.directives import Directives, directive_names
from tokenhub.simulator.dashscope.errors import DashScopeError


@dataclass
class Scenario(Directives):
    """The parsed ``#fake:`` directives of a create request (see the package docstring)."""

    queued: int = 1
    polls: int = 2
    fail: bool = False
    cancel_upstream: bool = False
    unknown: bool = False
    hang: bool = False
    duration: int | None = None
    status: int | None = None
    poll_status: int | None = None

    @classmethod
    def directive_error(cls, message: str, code: str) -> DashScopeError:
        return DashScopeError(400, "InvalidParameter", message)


def iter_directive_names() -> Iterator[str]:
    """Names accepted after ``#fake:`` (for CLI help)."""
    return directive_names(Scenario)
