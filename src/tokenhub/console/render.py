"""Jinja2 templates (autoescaped, undefined names are errors) and static-file URLs with a version.

Jinja2 loads with the first page rendered: a gateway that serves only the API never imports it.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


@cache
def static_url(name: str) -> str:
    """``/static/console.css?v=<content hash>``: browsers may cache it, a new release busts it."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]
    return f"/static/{name}?v={digest}"


def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = static_url
    return env


class Templates:
    def __init__(self) -> None:
        self._env: jinja2.Environment | None = None
        self.globals: dict[str, Any] = {}  # names a page group gives every template (the sign-in buttons)

    @property
    def env(self) -> jinja2.Environment:
        if self._env is None:
            self._env = environment()
            self._env.globals.update(self.globals)
        return self._env

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**context)
