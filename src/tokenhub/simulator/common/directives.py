"""``#fake:NAME[=VALUE]`` directives: parsed into each fake's Scenario dataclass."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import fields
from typing import Any, TypeVar

DIRECTIVE_RE = re.compile(r"#fake:([A-Za-z_]+)(?:=(\S+))?")


# Directives added to the text of every ``Directives.parse`` in the current context (a request's
# handler task): the operator simulator sets it from a middleware to inject faults. Empty: none.
EXTRA_DIRECTIVES: ContextVar[str] = ContextVar("tokenhub_fake_extra_directives", default="")
S = TypeVar("S")
DirectiveError = Callable[[str, str], Exception]  # (message, code) -> the fake's own 400 error


def convert_directive(type_name: str, value: str) -> Any:
    """A directive value for a field annotated ``type_name``; ValueError when it does not fit.

    ``bool`` fields take no value; ``int`` fields a non-negative integer; ``float``
    fields a number (negatives clamp to 0); anything else the string as is.
    """
    if type_name == "bool":
        if value:
            raise ValueError
        return True
    if not value:
        raise ValueError
    if "int" in type_name:
        number = int(value)
        if number < 0:
            raise ValueError
        return number
    if "float" in type_name:
        return max(0.0, float(value))
    return value


def parse_directives(cls: Callable[[], S], text: str, error: DirectiveError) -> S:
    """The ``#fake:`` directives in ``text`` as an instance of the dataclass ``cls``.

    An unknown name or a bad value raises ``error(message, code)`` with code
    ``unknown_fake_directive`` / ``invalid_fake_directive``.
    """
    scenario = cls()
    types = {f.name: str(f.type) for f in fields(scenario)}  # type: ignore[arg-type]
    for name, value in DIRECTIVE_RE.findall(text):
        if name not in types:
            raise error(f"Unknown fake directive '#fake:{name}'.", "unknown_fake_directive")
        try:
            converted = convert_directive(types[name], value)
        except ValueError:
            raise error(f"Invalid value for fake directive '#fake:{name}': {value!r}.", "invalid_fake_directive") from None
        setattr(scenario, name, converted)
    return scenario


class Directives:
    """Mixin for a Scenario dataclass: ``parse`` reads its fields from ``#fake:`` directives.

    A subclass says how its fake rejects a directive by overriding ``directive_error``.
    """

    @classmethod
    def directive_error(cls, message: str, code: str) -> Exception:
        raise NotImplementedError

    @classmethod
    def parse(cls: type[S], text: str) -> S:
        extra = EXTRA_DIRECTIVES.get()
        return parse_directives(cls, f"{text} {extra}" if extra else text, cls.directive_error)  # type: ignore[attr-defined]


def directive_names(cls: type) -> Iterator[str]:
    """Names accepted after ``#fake:`` for the Scenario dataclass ``cls`` (for CLI help)."""
    return (f.name for f in fields(cls))
