"""Operator changes to the catalog. Functions take an open connection; the caller owns the transaction."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import insert, select, update

from tokenhub.catalog.loader import apply_overrides, load_shipped
from tokenhub.catalog.model import Catalog, Family, Model
from tokenhub.errors import Conflict, InvalidRequest, NotFound
from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import bump_config_version, utc_now
from tokenhub.storage.tables import model_overrides
from tokenhub.vendors import PROVIDERS

MODEL_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/")


@functools.cache
def shipped() -> tuple[list[Family], list[Model]]:
    return load_shipped()


async def load_catalog(conn: AsyncConnection) -> Catalog:
    families, models = shipped()
    rows = [dict(row._mapping) for row in await conn.execute(select(model_overrides))]
    return apply_overrides(families, models, rows)


def _check_price(field: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise InvalidRequest(f"{field} cannot be negative", param=field)


async def set_model(
    conn: AsyncConnection,
    model_id: str,
    *,
    input_price: int | None = None,
    output_price: int | None = None,
    cached_input_price: int | None = None,
    enabled: bool | None = None,
) -> Model:
    catalog = await load_catalog(conn)
    if catalog.get(model_id) is None:
        raise NotFound(f"no model '{model_id}' in the catalog", code="model_not_found", param="model")
    values = {"input_price": input_price, "output_price": output_price, "cached_input_price": cached_input_price, "enabled": enabled}
    for name in ("input_price", "output_price", "cached_input_price"):
        _check_price(name, values[name])
    changes = {k: v for k, v in values.items() if v is not None}
    if not changes:
        raise InvalidRequest("nothing to change: give a price, --enable or --disable")
    exists = await conn.scalar(select(model_overrides.c.id).where(model_overrides.c.id == model_id))
    if exists is None:
        await conn.execute(insert(model_overrides).values(id=model_id, updated_at=utc_now(), **changes))
    else:
        await conn.execute(update(model_overrides).where(model_overrides.c.id == model_id).values(updated_at=utc_now(), **changes))
    await bump_config_version(conn)
    model = (await load_catalog(conn)).get(model_id)
    assert model is not None
    return model


async def add_model(
    conn: AsyncConnection,
    model_id: str,
    *,
    provider: str,
    upstream_id: str | None = None,
    name: str | None = None,
    input_price: int | None = None,
    output_price: int | None = None,
    cached_input_price: int | None = None,
    context_length: int | None = None,
    max_output_tokens: int | None = None,
    kind: str = "chat",
) -> Model:
    model_id = (model_id or "").strip()
    if "/" not in model_id or not set(model_id) <= MODEL_ID_CHARS or len(model_id) > 200 or model_id.startswith("/"):
        raise InvalidRequest("a model id looks like vendor/name (letters, digits, - _ . : /)", param="model")
    if provider not in PROVIDERS:
        raise InvalidRequest(f"unknown provider '{provider}'; one of: {', '.join(PROVIDERS)}", param="provider")
    if kind not in ("chat", "image", "video", "embedding"):
        raise InvalidRequest("kind is one of chat, image, video, embedding", param="kind")
    for field, value in (("context", context_length), ("max_output_tokens", max_output_tokens)):
        if value is not None and value < 1:
            raise InvalidRequest(f"{field} must be a positive number of tokens", param=field)
    for price_name, price in (("input_price", input_price), ("output_price", output_price), ("cached_input_price", cached_input_price)):
        _check_price(price_name, price)
    catalog = await load_catalog(conn)
    if catalog.get(model_id) is not None:
        raise Conflict(f"'{model_id}' is already in the catalog; change it with `tokenhub model set`", code="model_exists")
    await conn.execute(
        insert(model_overrides).values(
            id=model_id,
            provider=provider,
            upstream_id=(upstream_id or model_id.split("/", 1)[1]).strip(),
            name=name,
            kind=kind,
            context_length=context_length,
            max_output_tokens=max_output_tokens,
            input_price=input_price or 0,
            output_price=output_price or 0,
            cached_input_price=cached_input_price,
            enabled=True,
            updated_at=utc_now(),
        )
    )
    await bump_config_version(conn)
    model = (await load_catalog(conn)).get(model_id)
    assert model is not None
    return model


def model_public(model: Model) -> dict[str, Any]:
    """Catalog entry for operators: prices in nanos per 1M tokens."""
    return {
        "id": model.id,
        "name": model.name,
        "family": model.family,
        "provider": model.provider,
        "upstream_id": model.upstream_id,
        "kind": model.kind,
        "context_length": model.context_length,
        "max_output_tokens": model.max_output_tokens,
        "enabled": model.enabled,
        "pricing_nanos": model.pricing.as_dict(),
    }
