"""The in-memory directory the hot path reads: keys, users' flags, the catalog and the routes.

Nothing on the request path queries storage for these. Every change to keys, users, channels or
models bumps ``meta.config_version`` in the same transaction; each gateway process polls that
one integer (every ``TOKENHUB_REFRESH_INTERVAL`` seconds, 1 s by default) and reloads the whole
directory when it moves, so a revoked key, a new price or a new channel takes effect everywhere
within about a second. A change made through this process's own admin API reloads at once.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select

from tokenhub.accounts.secrets import KEY_PREFIX, hash_api_key
from tokenhub.billing.ledger_plan import Budget
from tokenhub.catalog.model import Catalog, Model
from tokenhub.catalog.service import load_catalog
from tokenhub.errors import AuthenticationFailed, PermissionDenied
from tokenhub.limits.policy import Limits
from tokenhub.limits.rates import Scope
from tokenhub.periodic import Periodic
from tokenhub.secrets_box import SecretBox
from tokenhub.storage import AsyncEngine
from tokenhub.storage.engine import as_utc, config_version
from tokenhub.storage.tables import api_keys, channels, users
from tokenhub.upstream import DEFAULT_TIMEOUTS, Channel, Route, Timeouts
from tokenhub.vendors import PROVIDERS

log = logging.getLogger("tokenhub.directory")


@dataclass(frozen=True)
class KeyInfo:
    id: int
    user_id: int
    name: str
    email: str
    is_admin: bool
    limit_nanos: int | None
    models: tuple[str, ...] | None
    expires_at: float | None  # unix seconds
    # Limits (tokenhub/limits), precomputed: the rate scopes to check (key, account) and the spend
    # budgets by period every hold of this key must fit in.
    rate_scopes: tuple[Scope, ...] = ()
    budgets: tuple[Budget, ...] = ()

    def allows(self, model: Model) -> bool:
        if self.models is None:
            return True
        return any(fnmatch.fnmatchcase(model.id, p) or fnmatch.fnmatchcase(model.short_name, p) for p in self.models)

    def check_model(self, model: Model) -> None:
        if not self.allows(model):
            raise PermissionDenied(f"this API key may not use the model '{model.id}'", code="model_not_allowed", param="model")


class Directory:
    def __init__(self, engine: AsyncEngine, box: SecretBox, refresh_interval: float, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
        self._engine = engine
        self._timeouts = timeouts  # defaults for channels that set none
        self._box = box
        self.version = -1
        self.catalog = Catalog([], [])
        self.prices_json: dict[str, str] = {}  # model id -> the prices a settlement records
        self._keys: dict[str, KeyInfo] = {}
        self._keys_by_id: dict[int, KeyInfo] = {}
        self._routes: dict[str, list[Route]] = {}
        self._channels: list[Channel] = []
        self._watch = Periodic("directory refresh", refresh_interval, self.refresh_if_changed)
        self._reload_lock = asyncio.Lock()

    # -- reading (hot path) -------------------------------------------------------------------

    def authenticate(self, token: str | None) -> KeyInfo:
        if not token:
            raise AuthenticationFailed(
                "Missing API key: send 'Authorization: Bearer th-...'", code="missing_api_key"
            )
        key = self._keys.get(hash_api_key(token)) if token.startswith(KEY_PREFIX) else None
        if key is None:
            raise AuthenticationFailed("Invalid API key (unknown, revoked, or of a disabled account)")
        if key.expires_at is not None and key.expires_at <= time.time():
            raise AuthenticationFailed("This API key has expired", code="expired_api_key")
        return key

    def routes(self, model_id: str) -> list[Route]:
        return self._routes.get(model_id, [])

    def key_by_id(self, key_id: int) -> KeyInfo | None:
        """An active key (not revoked, of an enabled account) by id: for callers that know which key, not its secret."""
        return self._keys_by_id.get(key_id)

    def all_routes(self) -> list[list[Route]]:
        return list(self._routes.values())

    def channels(self) -> list[Channel]:
        """The enabled channels (with their decrypted keys: never show them)."""
        return list(self._channels)

    # -- loading -----------------------------------------------------------------------------

    async def load(self) -> None:
        async with self._reload_lock:
            async with self._engine.connect() as conn:
                version = await config_version(conn)
                catalog = await load_catalog(conn)
                key_rows = (
                    await conn.execute(
                        select(api_keys, users.c.email, users.c.is_admin, *[c.label(f"account_{c.name}") for c in _account_limit_columns()])
                        .join(users, users.c.id == api_keys.c.user_id)
                        .where(api_keys.c.revoked_at.is_(None), users.c.disabled.is_(False))
                    )
                ).all()
                channel_rows = (await conn.execute(select(channels).where(channels.c.enabled))).all()
            self._keys = {row.key_hash: _key_info(row) for row in key_rows}
            self._keys_by_id = {key.id: key for key in self._keys.values()}
            self.catalog = catalog
            self.prices_json = {m.id: orjson.dumps(m.pricing.as_dict()).decode() for m in catalog.models.values()}
            self._channels = [_channel(row, self._box, self._timeouts) for row in channel_rows]
            self._routes = _build_routes(catalog, self._channels, channel_rows)
            self.version = version

    async def refresh_if_changed(self) -> bool:
        async with self._engine.connect() as conn:
            version = await config_version(conn)
        if version != self.version:
            await self.load()
            return True
        return False

    def start(self) -> None:
        self._watch.start()

    async def stop(self) -> None:
        await self._watch.stop()


def _account_limit_columns() -> list[Any]:
    return [users.c[name] for name in Limits.__dataclass_fields__]


def _key_info(row: Any) -> KeyInfo:
    expires = as_utc(row.expires_at)
    key_limits = Limits.of(row)
    account_limits = Limits(**{name: getattr(row, f"account_{name}") for name in Limits.__dataclass_fields__})
    scopes = tuple(
        scope
        for scope in (Scope(f"k:{row.id}", "key", key_limits), Scope(f"u:{row.user_id}", "account", account_limits))
        if scope.limits.has_rates
    )
    budgets = tuple(("key", row.id, period, limit) for period, limit in key_limits.spend_limits(include_total=False)) + tuple(
        ("user", row.user_id, period, limit) for period, limit in account_limits.spend_limits()
    )
    return KeyInfo(
        rate_scopes=scopes,
        budgets=budgets,
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        email=row.email,
        is_admin=bool(row.is_admin),
        limit_nanos=row.limit_nanos,
        models=tuple(row.models.split(",")) if row.models else None,
        expires_at=expires.timestamp() if expires else None,
    )


def _channel(row: Any, box: SecretBox, defaults: Timeouts) -> Channel:
    spec = PROVIDERS.get(row.provider)
    timeouts = Timeouts(
        connect=row.connect_timeout or defaults.connect,
        first_byte=row.first_byte_timeout or defaults.first_byte,
        idle=row.idle_timeout or defaults.idle,
    )
    return Channel(
        id=row.id,
        name=row.name,
        provider=row.provider,
        protocol=spec.protocol if spec else "unknown",
        base_url=row.base_url,
        api_key=box.decrypt(row.api_key_enc),
        priority=row.priority,
        weight=row.weight,
        timeouts=timeouts,
    )


def _build_routes(catalog: Catalog, chans: list[Channel], rows: list[Any]) -> dict[str, list[Route]]:
    routes: dict[str, list[Route]] = {}
    for channel, row in zip(chans, rows):
        mapping: dict[str, str] | None = orjson.loads(row.models) if row.models else None
        if mapping is None:
            mapping = {m.id: m.upstream_id for m in catalog.models.values() if m.provider == channel.provider}
        for model_id, upstream_id in mapping.items():
            if model_id in catalog.models:
                routes.setdefault(model_id, []).append(Route(channel, upstream_id))
    for model_routes in routes.values():
        model_routes.sort(key=lambda r: -r.channel.priority)
    return routes
