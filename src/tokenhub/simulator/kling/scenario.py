"""The ``#fake:`` directives the fake Kling understands."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from tokenhub.simulator.common.directives import DIRECTIVE_RE
from tokenhub.simulator.kling.errors import invalid


@dataclass
class Scenario:
    """The parsed ``#fake:`` directives of a create request (see the package docstring)."""

    queued: int = 1
    polls: int = 2
    fail: bool = False
    hang: bool = False
    duration: str | None = None
    status: int | None = None
    poll_status: int | None = None
    rate_limit: bool = False

    @classmethod
    def parse(cls, text: str) -> Scenario:
        scenario = cls()
        types = {f.name: str(f.type) for f in fields(cls)}
        for name, value in DIRECTIVE_RE.findall(text):
            if name not in types:
                raise invalid(f"Unknown fake directive '#fake:{name}'.")
            setattr(scenario, name, _convert_directive(name, types[name], value))
        return scenario


def _convert_directive(name: str, type_name: str, value: str) -> Any:
    try:
        if type_name == "bool":
            if value:
                raise ValueError
            return True
        if "int" in type_name:
            number = int(value)
            if number < 0 or (name in ("status", "poll_status") and not 400 <= number <= 599):
                raise ValueError
            return number
        if float(value) <= 0:  # duration: a positive number of seconds, reported verbatim
            raise ValueError
        return value
    except ValueError:
        raise invalid(f"Invalid value for fake directive '#fake:{name}': {value!r}.") from None


def iter_directive_names() -> Iterator[str]:
    """Names accepted after ``#fake:`` (for CLI help)."""
    return (f.name for f in fields(Scenario))
