"""The ``#fake:`` directives the fake Ark understands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenhub.simulator.ark.errors import invalid
from tokenhub.simulator.common.directives import DIRECTIVE_RE

# kind: "flag" (no value), "int", "status" (HTTP 400-599), "str", "flag_or_str"
DIRECTIVES = {
    "queued": "int",
    "polls": "int",
    "fail": "flag_or_str",
    "expire": "flag",
    "cancel_upstream": "flag",
    "hang": "flag",
    "duration": "int",
    "status": "status",
    "poll_status": "status",
    "poll_errors": "int",
    "error_code": "str",
    "retry_after": "str",
    "callback": "flag",
    "images": "int",
    "failed_images": "int",
}


@dataclass
class Scenario:
    """The parsed ``#fake:`` directives of a request (see the package docstring)."""

    queued: int = 1
    polls: int = 2
    fail: str | None = None  # the failure code, "" for the default one
    expire: bool = False
    cancel_upstream: bool = False
    hang: bool = False
    duration: int | None = None
    status: int | None = None
    poll_status: int | None = None
    poll_errors: int = 1
    error_code: str | None = None
    retry_after: str | None = None
    callback: bool = False
    images: int | None = None
    failed_images: int = 0

    @classmethod
    def parse(cls, text: str, param: str) -> Scenario:
        scenario = cls()
        for name, value in DIRECTIVE_RE.findall(text):
            kind = DIRECTIVES.get(name)
            if kind is None:
                raise invalid(param, f"unknown fake directive '#fake:{name}'")
            setattr(scenario, name, _convert(name, kind, value, param))
        return scenario


def _convert(name: str, kind: str, value: str, param: str) -> Any:
    try:
        if kind == "flag":
            if value:
                raise ValueError
            return True
        if kind == "flag_or_str":
            return value
        if not value:
            raise ValueError
        if kind in ("int", "status"):
            number = int(value)
            if number < 0 or (kind == "status" and not 400 <= number <= 599):
                raise ValueError
            return number
        return value
    except ValueError:
        raise invalid(param, f"bad value for fake directive '#fake:{name}': {value!r}") from None
