"""Load the shipped catalog (models.yaml) and merge the operator's overrides from the database.

YAML turns ``2.5`` into a float; prices must never be floats, so this loader reads every YAML
float as a ``Decimal`` (and the shipped file quotes its prices anyway).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from tokenhub.catalog.model import Catalog, Family, Model, Pricing
from tokenhub.money import usd_to_nanos

SHIPPED = Path(__file__).parent / "models.yaml"


# libyaml's parser where PyYAML has it (its wheels do): the shipped catalog reads in 10 ms instead of 78,
# once per process. The values are the same as the pure-Python parser's (tests/catalog/test_catalog.py).
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DecimalLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    pass


def _decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    return Decimal(loader.construct_scalar(node))  # type: ignore[arg-type]


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _decimal)


def _usd(value: Any) -> int:
    return usd_to_nanos(str(value))


def _pricing(raw: Mapping[str, Any] | None) -> Pricing:
    raw = raw or {}
    optional = {k: _usd(raw[k]) for k in ("cached_input", "cache_write", "reasoning", "per_image") if raw.get(k) is not None}
    return Pricing(
        input=_usd(raw.get("input", 0)),
        output=_usd(raw.get("output", 0)),
        per_image_by_size={str(k): _usd(v) for k, v in (raw.get("per_image_by_size") or {}).items()},
        per_second={str(k): _usd(v) for k, v in (raw.get("per_second") or {}).items()},
        server_tools={str(k): _usd(v) for k, v in (raw.get("server_tools") or {}).items()},
        **optional,
    )


def _timestamp(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return calendar.timegm(value.utctimetuple())
    if isinstance(value, dt.date):
        return calendar.timegm(value.timetuple())
    return int(value or 0)


def _model(raw: Mapping[str, Any], families: Mapping[str, Family]) -> Model:
    family = families[raw["family"]]
    return Model(
        id=raw["id"],
        name=raw.get("name") or raw["id"],
        family=family.id,
        provider=raw.get("provider") or family.provider,
        upstream_id=raw.get("upstream_id") or raw["id"].split("/", 1)[-1],
        kind=raw.get("kind", "chat"),
        created=_timestamp(raw.get("created")),
        context_length=raw.get("context_length"),
        max_output_tokens=raw.get("max_output_tokens"),
        input_modalities=tuple(raw.get("input_modalities") or ("text",)),
        output_modalities=tuple(raw.get("output_modalities") or ("text",)),
        capabilities=tuple(raw.get("capabilities") or ()),
        pricing=_pricing(raw.get("pricing")),
        enabled=bool(raw.get("enabled", True)),
        video=raw.get("video"),
        image=raw.get("image"),
        embedding=raw.get("embedding"),
        completions=bool(raw.get("completions", False)),
        responses_only=bool(raw.get("responses_only", False)),
        unverified=tuple(raw.get("unverified") or ()),
    )


def load_shipped(path: Path = SHIPPED) -> tuple[list[Family], list[Model]]:
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_DecimalLoader)  # noqa: S506 - SafeLoader subclass
    families = [
        Family(
            id=f["id"],
            name=f["name"],
            provider=f["provider"],
            description=f.get("description", ""),
            description_zh=f.get("description_zh", ""),
        )
        for f in data["families"]
    ]
    by_id = {f.id: f for f in families}
    models = [_model(m, by_id) for m in data["models"]]
    return families, models


def apply_overrides(families: list[Family], models: list[Model], overrides: Iterable[Mapping[str, Any]]) -> Catalog:
    """Shipped models with the operator's changes; operator-added models join a family of their provider."""
    merged = {m.id: m for m in models}
    family_ids = {f.id for f in families}
    extra_families: dict[str, Family] = {}
    for row in overrides:
        base = merged.get(row["id"])
        if base is None:
            provider = row["provider"] or "openai-compatible"
            family_id = provider if provider in family_ids else f"custom-{provider}"
            if family_id not in family_ids and family_id not in extra_families:
                extra_families[family_id] = Family(family_id, f"Custom ({provider})", provider)
            base = Model(
                id=row["id"],
                name=row["name"] or row["id"],
                family=family_id,
                provider=provider,
                upstream_id=row["upstream_id"] or row["id"].split("/", 1)[-1],
                kind=row["kind"] or "chat",
            )
        pricing = base.pricing
        price_changes = {
            field: row[column]
            for field, column in (("input", "input_price"), ("output", "output_price"), ("cached_input", "cached_input_price"))
            if row[column] is not None
        }
        if price_changes:
            pricing = replace(pricing, **price_changes)
        changes: dict[str, Any] = {"pricing": pricing}
        for field in ("provider", "upstream_id", "name", "kind", "context_length", "max_output_tokens", "enabled"):
            if row[field] is not None:
                changes[field] = row[field]
        merged[row["id"]] = replace(base, **changes)
    return Catalog(families + list(extra_families.values()), list(merged.values()))
