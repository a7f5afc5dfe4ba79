"""Channels. Functions take an open connection; the caller owns the transaction."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Row

from tokenhub.catalog.model import Catalog
from tokenhub.digits import whole_number
from tokenhub.errors import Conflict, InvalidRequest, NotFound
from tokenhub.secrets_box import SecretBox
from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import as_utc, bump_config_version, utc_now
from tokenhub.storage.tables import channels
from tokenhub.vendors import PROVIDERS

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def validate_base_url(url: str) -> str:
    url = (url or "").strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InvalidRequest(f"'{url[:200]}' is not a valid URL", param="base_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"'{url[:200]}' is not an http(s) URL", param="base_url")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidRequest("the base URL must not carry credentials, a query or a fragment", param="base_url")
    return url


def parse_channel_models(raw: str | list[str] | dict[str, str] | None, catalog: Catalog, provider: str) -> dict[str, str] | None:
    """``ID[=UPSTREAM_ID],...`` -> {catalog id: upstream id}; every id must be in the catalog."""
    if raw is None or raw == "" or raw == []:
        return None
    if isinstance(raw, dict):
        pairs = [(str(k).strip(), str(v).strip()) for k, v in raw.items()]
    else:
        items = raw.split(",") if isinstance(raw, str) else raw
        pairs = []
        for item in items:
            item = str(item).strip()
            if not item:
                continue
            model_id, _, upstream = item.partition("=")
            pairs.append((model_id.strip(), upstream.strip()))
    mapping: dict[str, str] = {}
    for model_id, upstream in pairs:
        model = catalog.get(model_id)
        if model is None:
            raise InvalidRequest(
                f"'{model_id}' is not in the catalog; add it first with `tokenhub model add {model_id} --provider {provider}`",
                param="models",
            )
        mapping[model.id] = upstream or model.upstream_id
    return mapping or None


TIMEOUT_FIELDS = ("connect_timeout", "first_byte_timeout", "idle_timeout")
MAX_TIMEOUT = 3600.0


def parse_timeouts(values: dict[str, Any]) -> dict[str, float | None]:
    """Seconds, > 0 and at most an hour; None or "" means the gateway's default."""
    out: dict[str, float | None] = {}
    for name in TIMEOUT_FIELDS:
        if name not in values:
            continue
        value = values[name]
        if value is None or value == "" or (isinstance(value, str) and value.strip().lower() in ("none", "default")):
            out[name] = None
            continue
        try:
            seconds = float(str(value).strip()) if not isinstance(value, bool) else 0.0
        except ValueError:
            seconds = 0.0
        if not 0 < seconds <= MAX_TIMEOUT:
            raise InvalidRequest(f"{name} must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}", param=name)
        out[name] = seconds
    return out


async def add_channel(
    conn: AsyncConnection,
    box: SecretBox,
    catalog: Catalog,
    *,
    provider: str,
    api_key: str,
    base_url: str | None = None,
    name: str | None = None,
    models: str | list[str] | dict[str, str] | None = None,
    priority: int = 0,
    weight: int = 1,
    timeouts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``timeouts``: connect_timeout, first_byte_timeout, idle_timeout in seconds (None: the gateway's default)."""
    spec = PROVIDERS.get(provider)
    if spec is None:
        raise InvalidRequest(f"unknown provider '{provider}'; one of: {', '.join(PROVIDERS)}", param="provider")
    if not base_url:
        if spec.base_url is None:
            raise InvalidRequest(f"provider '{provider}' needs --base-url", param="base_url")
        base_url = spec.base_url
    base_url = validate_base_url(base_url)
    api_key = validate_api_key(api_key, provider)
    validate_weight(weight)
    validate_priority(priority)
    mapping = parse_channel_models(models, catalog, provider)
    name = await _free_name(conn, name, provider)
    result = await conn.execute(
        insert(channels)
        .values(
            name=name,
            provider=provider,
            base_url=base_url,
            api_key_enc=box.encrypt(api_key),
            models=orjson.dumps(mapping).decode() if mapping else None,
            priority=priority,
            weight=weight,
            enabled=True,
            created_at=utc_now(),
            **parse_timeouts(timeouts or {}),
        )
        .returning(channels.c.id)
    )
    await bump_config_version(conn)
    return channel_dict(await _get_row(conn, result.scalar_one()))


def validate_api_key(api_key: str | None, provider: str) -> str:
    api_key = (api_key or "").strip()
    if not api_key:
        raise InvalidRequest("the upstream API key is empty", param="api_key")
    vendor = PROVIDERS.get(provider)
    problem = vendor.check_key(api_key) if vendor else None
    if problem:
        raise InvalidRequest(problem, param="api_key")
    return api_key


def validate_weight(weight: object) -> None:
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1 or weight > 1000:
        raise InvalidRequest("the weight must be a whole number from 1 to 1000", param="weight")


def validate_priority(priority: object) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 1_000_000:
        raise InvalidRequest("the priority must be a whole number", param="priority")


async def _checked_name(conn: AsyncConnection, name: str, *, exclude_id: int | None = None) -> str:
    name = name.strip()
    if not NAME_RE.match(name) or name.isdigit():
        raise InvalidRequest(
            "a channel name has letters, digits, '-', '_' or '.', is not only digits, and has at most 100 characters",
            param="name",
        )
    taken = await conn.scalar(select(channels.c.id).where(channels.c.name == name))
    if taken is not None and taken != exclude_id:
        raise Conflict(f"a channel named '{name}' exists already", code="channel_exists", param="name")
    return name


async def _free_name(conn: AsyncConnection, name: str | None, provider: str) -> str:
    if name:
        return await _checked_name(conn, name)
    taken = {r[0] for r in await conn.execute(select(channels.c.name).where(channels.c.name.like(f"{provider}%")))}
    candidate, n = provider, 1
    while candidate in taken:
        n += 1
        candidate = f"{provider}-{n}"
    return candidate


async def _get_row(conn: AsyncConnection, ref: str | int) -> Row[Any]:
    ref = str(ref).strip()
    channel_id = whole_number(ref)
    query = select(channels).where(channels.c.id == channel_id if channel_id is not None else channels.c.name == ref)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no channel '{ref}'", code="channel_not_found")
    return row


async def list_channels(conn: AsyncConnection) -> list[dict[str, Any]]:
    return [channel_dict(row) for row in await conn.execute(select(channels).order_by(channels.c.id))]


async def remove_channel(conn: AsyncConnection, ref: str | int) -> dict[str, Any]:
    row = await _get_row(conn, ref)
    await conn.execute(delete(channels).where(channels.c.id == row.id))
    await bump_config_version(conn)
    return channel_dict(row)


KEEP: Any = object()  # update_channel: leave this field as it is


async def update_channel(
    conn: AsyncConnection,
    box: SecretBox,
    catalog: Catalog,
    ref: str | int,
    *,
    name: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    models: Any = KEEP,
    priority: int | None = None,
    weight: int | None = None,
    enabled: bool | None = None,
    timeouts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Change a channel (``timeouts``: only the names given change; None/"" resets one to the default). ``None`` (or ``KEEP`` for ``models``) keeps a field; an empty ``api_key`` keeps the
    stored key (it is write-only: nobody can read it back to send it again); ``models=None`` serves the
    provider's whole catalog. The provider is fixed: a different provider is a new channel."""
    row = await _get_row(conn, ref)
    values: dict[str, Any] = {}
    if name is not None and name.strip() != row.name:
        values["name"] = await _checked_name(conn, name, exclude_id=row.id)
    if base_url is not None:
        values["base_url"] = validate_base_url(base_url)
    if api_key is not None and api_key.strip():
        values["api_key_enc"] = box.encrypt(validate_api_key(api_key, row.provider))
    if models is not KEEP:
        mapping = parse_channel_models(models, catalog, row.provider)
        values["models"] = orjson.dumps(mapping).decode() if mapping else None
    if priority is not None:
        validate_priority(priority)
        values["priority"] = priority
    if weight is not None:
        validate_weight(weight)
        values["weight"] = weight
    if enabled is not None:
        values["enabled"] = bool(enabled)
    values.update(parse_timeouts(timeouts or {}))
    if values:
        await conn.execute(update(channels).where(channels.c.id == row.id).values(**values))
        await bump_config_version(conn)
    return channel_dict(await _get_row(conn, row.id))


async def get_channel(conn: AsyncConnection, ref: str | int) -> dict[str, Any]:
    return channel_dict(await _get_row(conn, ref))


async def upsert_env_channel(conn: AsyncConnection, box: SecretBox, provider: str, api_key: str) -> None:
    """A channel for a key found in the environment (name ``env-<provider>``), kept in step with it."""
    name = f"env-{provider}"
    row = (await conn.execute(select(channels).where(channels.c.name == name))).first()
    if row is None:
        spec = PROVIDERS[provider]
        await conn.execute(
            insert(channels).values(
                name=name,
                provider=provider,
                base_url=spec.base_url,
                api_key_enc=box.encrypt(api_key),
                models=None,
                priority=0,
                weight=1,
                enabled=True,
                created_at=utc_now(),
            )
        )
        await bump_config_version(conn)
    elif box.decrypt(row.api_key_enc) != api_key:
        await conn.execute(update(channels).where(channels.c.id == row.id).values(api_key_enc=box.encrypt(api_key)))
        await bump_config_version(conn)


def channel_dict(row: Row[Any]) -> dict[str, Any]:
    """A channel as operators may see it: the upstream key is write-only and never shown."""
    return {
        "id": row.id,
        "name": row.name,
        "provider": row.provider,
        "base_url": row.base_url,
        "models": orjson.loads(row.models) if row.models else None,
        "priority": row.priority,
        "weight": row.weight,
        "enabled": bool(row.enabled),
        **{name: getattr(row, name) for name in TIMEOUT_FIELDS},
        "created_at": as_utc(row.created_at),
    }
