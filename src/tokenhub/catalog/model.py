"""Catalog value types. Prices are integer nanos (see ``tokenhub.money``)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from tokenhub.errors import NotFound


@dataclass(frozen=True)
class Pricing:
    input: int = 0  # nanos per 1M input tokens
    output: int = 0  # nanos per 1M output tokens
    cached_input: int | None = None  # nanos per 1M cache-read tokens (None: input price)
    cache_write: int | None = None  # nanos per 1M cache-write tokens (None: input price)
    reasoning: int | None = None  # nanos per 1M reasoning tokens (None: output price)
    per_image: int | None = None  # nanos per image
    per_image_by_size: dict[str, int] = field(default_factory=dict)
    per_second: dict[str, int] = field(default_factory=dict)  # video: nanos per second, by mode
    # chat: nanos per use of a server tool the upstream runs, by tool kind (web_search, web_fetch, ...);
    # a kind that is absent has no price and is refused, 0 means tokens only
    server_tools: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input": self.input, "output": self.output}
        for name in ("cached_input", "cache_write", "reasoning", "per_image"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.per_image_by_size:
            out["per_image_by_size"] = dict(self.per_image_by_size)
        if self.per_second:
            out["per_second"] = dict(self.per_second)
        if self.server_tools:
            out["server_tools"] = dict(self.server_tools)
        return out


@dataclass(frozen=True)
class Family:
    id: str
    name: str
    provider: str
    description: str = ""
    description_zh: str = ""


@dataclass(frozen=True)
class Model:
    id: str  # vendor/name, what clients send
    name: str
    family: str
    provider: str  # the channel provider that serves it by default
    upstream_id: str
    kind: str = "chat"  # chat | image | video | embedding
    created: int = 0  # unix seconds
    context_length: int | None = None
    max_output_tokens: int | None = None
    input_modalities: tuple[str, ...] = ("text",)
    output_modalities: tuple[str, ...] = ("text",)
    capabilities: tuple[str, ...] = ()
    pricing: Pricing = field(default_factory=Pricing)
    enabled: bool = True
    video: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    # embedding: {"dimensions": default, "dimension_choices": [...] or "dimension_range": [min, max],
    # "max_inputs": per request, "max_input_tokens": per input, "token_arrays": bool}
    embedding: dict[str, Any] | None = None
    responses_only: bool = False  # chat: its upstream serves it only through OpenAI's Responses API
    completions: bool = False  # chat: its upstream also serves legacy /completions (prompt in, text out)
    unverified: tuple[str, ...] = ()

    @property
    def short_name(self) -> str:
        return self.id.split("/", 1)[-1]


class Catalog:
    """All models by id, with lookups for the short names clients send (``gpt-4.1``)."""

    def __init__(self, families: list[Family], models: list[Model]) -> None:
        self.families = families
        self.models: dict[str, Model] = {m.id: m for m in models}
        self._by_short: dict[str, list[Model]] = {}
        self._by_upstream: dict[str, list[Model]] = {}
        for m in models:
            self._by_short.setdefault(m.short_name, []).append(m)
            self._by_upstream.setdefault(m.upstream_id, []).append(m)

    def get(self, model_id: str) -> Model | None:
        return self.models.get(model_id)

    def resolve(self, name: str) -> Model:
        """The model a client means, or NotFound with the closest ids."""
        model = self.models.get(name)
        if model is None and "/" not in name:
            # the name after the vendor prefix first; the vendor's own id only if that finds nothing
            candidates = [m for m in self._by_short.get(name, ()) if m.enabled]
            if not candidates:
                candidates = [m for m in self._by_upstream.get(name, ()) if m.enabled]
            if len(candidates) == 1:
                model = candidates[0]
            elif len(candidates) > 1:
                ids = ", ".join(sorted(m.id for m in candidates))
                raise NotFound(f"model '{name}' is ambiguous; use one of: {ids}", code="model_not_found", param="model")
        if model is None or not model.enabled:
            raise NotFound(self._not_found_message(name), code="model_not_found", param="model")
        return model

    def _not_found_message(self, name: str) -> str:
        enabled = [m.id for m in self.models.values() if m.enabled]
        close = difflib.get_close_matches(name, enabled, n=3, cutoff=0.5)
        if not close and "/" not in name:
            close = difflib.get_close_matches(name, [i.split("/", 1)[-1] for i in enabled], n=3, cutoff=0.5)
            close = [i for i in enabled if i.split("/", 1)[-1] in close][:3]
        hint = f" Did you mean: {', '.join(close)}?" if close else " GET /api/v1/models lists the models."
        return f"The model '{name}' does not exist or is not available.{hint}"
