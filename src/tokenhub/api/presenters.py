"""How catalog entries and money look to API clients."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson

from tokenhub.catalog.model import Catalog, Model
from tokenhub.money import format_usd, per_unit_to_per_token


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def model_entry(model: Model, catalog: Catalog) -> dict[str, Any]:
    p = model.pricing
    pricing: dict[str, Any] = {}
    per_million: dict[str, Any] = {}
    if model.kind == "chat":
        pricing = {"prompt": per_unit_to_per_token(p.input), "completion": per_unit_to_per_token(p.output)}
        per_million = {"input": format_usd(p.input), "output": format_usd(p.output)}
        if p.cached_input is not None:
            pricing["input_cache_read"] = per_unit_to_per_token(p.cached_input)
            per_million["cached_input"] = format_usd(p.cached_input)
        if p.cache_write is not None:
            pricing["input_cache_write"] = per_unit_to_per_token(p.cache_write)
            per_million["cache_write"] = format_usd(p.cache_write)
        if p.reasoning is not None:
            pricing["internal_reasoning"] = per_unit_to_per_token(p.reasoning)
            per_million["reasoning"] = format_usd(p.reasoning)
    elif model.kind == "embedding":  # billed per input token only
        pricing = {"prompt": per_unit_to_per_token(p.input), "completion": "0"}
        per_million = {"input": format_usd(p.input)}
    if p.per_image is not None:
        pricing["image"] = format_usd(p.per_image)
    if p.per_image_by_size:
        pricing["image_by_size"] = {size: format_usd(v) for size, v in p.per_image_by_size.items()}
    if p.per_second:
        pricing["video_per_second"] = {mode: format_usd(v) for mode, v in p.per_second.items()}
    family = next((f for f in catalog.families if f.id == model.family), None)
    entry: dict[str, Any] = {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": model.id.split("/", 1)[0],
        "name": model.name,
        "provider": family.name if family else model.provider,
        "family": model.family,
        "type": model.kind,
        "context_length": model.context_length,
        "max_output_tokens": model.max_output_tokens,
        "architecture": {
            "input_modalities": list(model.input_modalities),
            "output_modalities": list(model.output_modalities),
        },
        "capabilities": list(model.capabilities),
        "pricing": pricing,
    }
    if per_million:
        entry["pricing_per_million_tokens"] = per_million
    if model.video:
        entry["video"] = model.video
    if model.image:
        entry["image"] = model.image
    if model.embedding:
        entry["embedding"] = model.embedding
    return entry


def models_list(catalog: Catalog) -> bytes:
    data = [model_entry(m, catalog) for m in catalog.models.values() if m.enabled]
    return orjson.dumps({"object": "list", "data": data})


def anthropic_model(model: Model) -> dict[str, Any]:
    """A model as the Anthropic API's ``ModelInfo`` (for the anthropic SDKs' ``models.retrieve`` / ``list``)."""
    created = datetime.fromtimestamp(model.created, tz=timezone.utc) if model.created else datetime(2024, 1, 1, tzinfo=timezone.utc)
    return {"type": "model", "id": model.id, "display_name": model.name, "created_at": iso(created)}
