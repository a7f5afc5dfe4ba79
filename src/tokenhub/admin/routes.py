"""/api/admin: the same operations as the CLI, for an admin user's API key.

Amounts travel as decimal strings of USD (``"12.5"``); request bodies are parsed with exact
decimals, so a JSON number like ``12.5`` is also read exactly, never as a float.
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from tokenhub.accounts import service as accounts
from tokenhub.billing import service as billing
from tokenhub.billing import stats
from tokenhub.catalog import service as catalog_service
from tokenhub.channels import service as channels
from tokenhub.channels.probe import probe_channel
from tokenhub.digits import whole_number
from tokenhub.directory import KeyInfo
from tokenhub.errors import InvalidRequest, PayloadTooLarge, PermissionDenied
from tokenhub.json_body import parse_json
from tokenhub.money import MoneyError, format_usd, usd_to_nanos
from tokenhub.storage import AsyncConnection
from tokenhub.surface import RouteGroup, authenticate

MAX_ADMIN_BODY = 1024 * 1024


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=_encode), status=status, content_type="application/json")


def usd(value: Any, field: str, *, allow_none: bool = False) -> int | None:
    if value is None:
        if allow_none:
            return None
        raise InvalidRequest(f"'{field}' is required (USD, e.g. \"10.00\")", param=field)
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise InvalidRequest(f"'{field}' must be a USD amount such as \"10.00\"", param=field)
    try:
        return usd_to_nanos(value)
    except MoneyError as exc:
        raise InvalidRequest(f"'{field}': {exc}", param=field) from None


def _money_view(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        k.removesuffix("_nanos"): format_usd(v) if k.endswith("_nanos") and v is not None else v for k, v in summary.items()
    }


LIMIT_NAMES = ("rpm", "tpm", "concurrency", "daily_limit", "weekly_limit", "monthly_limit")


def _money_deep(value: Any) -> Any:
    """``_money_view`` all the way down (the statistics nest their figures)."""
    if isinstance(value, dict):
        return {
            k.removesuffix("_nanos"): format_usd(v) if k.endswith("_nanos") and isinstance(v, int) else _money_deep(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_money_deep(v) for v in value]
    return value


def _bool_field(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false", param=name)
    return value


def _int_field(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{name}' must be a whole number", param=name)
    return value


class AdminAPI(RouteGroup):
    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/admin/users", self.list_users),
            web.post("/api/admin/users", self.create_user),
            web.get("/api/admin/users/{user}", self.show_user),
            web.patch("/api/admin/users/{user}", self.update_user),
            web.get("/api/admin/users/{user}/keys", self.list_keys),
            web.post("/api/admin/users/{user}/keys", self.create_key),
            web.delete("/api/admin/keys/{key_id}", self.revoke_key),
            web.patch("/api/admin/keys/{key_id}", self.update_key),
            web.get("/api/admin/users/{user}/limits", self.show_limits),
            web.patch("/api/admin/users/{user}/limits", self.set_limits),
            web.get("/api/admin/users/{user}/credits", self.show_credits),
            web.post("/api/admin/users/{user}/credits", self.add_credits),
            web.get("/api/admin/channels", self.list_channels),
            web.post("/api/admin/channels", self.add_channel),
            web.patch("/api/admin/channels/{channel}", self.update_channel),
            web.delete("/api/admin/channels/{channel}", self.remove_channel),
            web.post("/api/admin/channels/{channel}/test", self.test_channel),
            web.get("/api/admin/stats/overview", self.stats_overview),
            web.get("/api/admin/stats/channels", self.stats_channels),
            web.get("/api/admin/models", self.list_models),
            web.post("/api/admin/models", self.add_model),
            web.patch("/api/admin/models/{model:.+}", self.set_model),
            web.get("/api/admin/ledger/check", self.check_ledger),
        ]

    # -- plumbing ------------------------------------------------------------------------------

    def _admin(self, request: web.Request) -> KeyInfo:
        key = authenticate(request, self.gw.directory)
        if not key.is_admin:
            raise PermissionDenied("this endpoint needs the API key of an admin user", code="admin_only")
        return key

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if len(raw) > MAX_ADMIN_BODY:
            raise PayloadTooLarge("the request body is too large")
        body = parse_json(raw or b"{}", exact_decimals=True)
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        return body

    async def _write(self, fn: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
        """Run a change in one transaction, then reload this process's directory at once."""
        async with self.gw.engine.begin() as conn:
            result = await fn(conn)
        await self.gw.directory.refresh_if_changed()
        return result

    async def _read(self, fn: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
        async with self.gw.engine.connect() as conn:
            return await fn(conn)

    # -- users and keys ------------------------------------------------------------------------

    async def list_users(self, request: web.Request) -> web.Response:
        self._admin(request)
        query = request.query.get("q")
        users = await self._read(lambda c: accounts.list_users(c, query))
        return _json({"data": [_money_view(u) for u in users]})

    async def create_user(self, request: web.Request) -> web.Response:
        self._admin(request)
        body = await self._body(request)
        password = body.get("password")
        if password is not None and not isinstance(password, str):
            raise InvalidRequest("'password' must be a string", param="password")
        is_admin = body.get("is_admin", False)
        if not isinstance(is_admin, bool):
            raise InvalidRequest("'is_admin' must be true or false", param="is_admin")
        user = await self._write(
            lambda c: accounts.create_user(c, str(body.get("email") or ""), password=password, is_admin=is_admin)
        )
        return _json({"data": _money_view(user)}, status=201)

    async def show_user(self, request: web.Request) -> web.Response:
        self._admin(request)
        user = await self._read(lambda c: accounts.get_user(c, request.match_info["user"]))
        return _json({"data": _money_view(accounts.user_dict(user))})

    async def update_user(self, request: web.Request) -> web.Response:
        acting = self._admin(request)
        body = await self._body(request)
        disabled, is_admin = _bool_field(body, "disabled"), _bool_field(body, "is_admin")
        if disabled is None and is_admin is None:
            raise InvalidRequest("nothing to change: give 'disabled' and/or 'is_admin'")
        ref = request.match_info["user"]

        async def change(conn: AsyncConnection) -> dict[str, Any]:
            user = accounts.user_dict(await accounts.get_user(conn, ref))
            if is_admin is not None:
                user = await accounts.set_admin(conn, user["id"], is_admin, acting_user_id=acting.user_id)
            if disabled is not None:
                user = await accounts.set_disabled(conn, user["id"], disabled, acting_user_id=acting.user_id)
            return user

        return _json({"data": _money_view(await self._write(change))})

    async def list_keys(self, request: web.Request) -> web.Response:
        self._admin(request)
        keys = await self._read(lambda c: accounts.list_keys(c, request.match_info["user"]))
        return _json({"data": [_money_view(k) for k in keys]})

    async def create_key(self, request: web.Request) -> web.Response:
        self._admin(request)
        body = await self._body(request)
        limit = usd(body.get("limit"), "limit", allow_none=True)
        models = body.get("models")
        if models is not None and not (isinstance(models, str) or (isinstance(models, list) and all(isinstance(m, str) for m in models))):
            raise InvalidRequest("'models' is a list of model ids or patterns", param="models")
        expires = body.get("expires")
        if expires is not None and not isinstance(expires, str):
            raise InvalidRequest("'expires' is a date like 2026-12-31", param="expires")
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidRequest("'name' must be a string", param="name")
        limits = {name: body[name] for name in LIMIT_NAMES if name in body}
        plaintext, key = await self._write(
            lambda c: accounts.create_key(
                c, request.match_info["user"], name=name, limit_nanos=limit, models=models, expires=expires, limits=limits
            )
        )
        return _json({"data": {**_money_view(key), "key": plaintext}}, status=201)

    async def update_key(self, request: web.Request) -> web.Response:
        """Body: any of name, models, expires, limit, rpm, tpm, concurrency, daily_limit, weekly_limit, monthly_limit."""
        self._admin(request)
        body = await self._body(request)
        unknown = sorted(set(body) - {"name", "models", "expires", "limit", *LIMIT_NAMES})
        if unknown:
            raise InvalidRequest(f"unknown field '{unknown[0]}'", param=unknown[0])
        key = await self._write(lambda c: accounts.update_key(c, request.match_info["key_id"], body))
        return _json({"data": _money_view(key)})

    async def show_limits(self, request: web.Request) -> web.Response:
        self._admin(request)
        async with self.gw.engine.connect() as conn:
            row = await accounts.get_user(conn, request.match_info["user"])
        return _json({"data": _money_view(accounts.account_limits(row))})

    async def set_limits(self, request: web.Request) -> web.Response:
        """Body: any of limit, rpm, tpm, concurrency, daily_limit, weekly_limit, monthly_limit (null clears)."""
        self._admin(request)
        body = await self._body(request)
        unknown = sorted(set(body) - {"limit", *LIMIT_NAMES})
        if unknown:
            raise InvalidRequest(f"unknown field '{unknown[0]}'", param=unknown[0])
        limits = await self._write(lambda c: accounts.set_account_limits(c, request.match_info["user"], body))
        return _json({"data": _money_view(limits)})

    async def revoke_key(self, request: web.Request) -> web.Response:
        self._admin(request)
        key = await self._write(lambda c: accounts.revoke_key(c, request.match_info["key_id"]))
        return _json({"data": _money_view(key)})

    # -- credits and ledger --------------------------------------------------------------------

    async def show_credits(self, request: web.Request) -> web.Response:
        self._admin(request)
        summary = await self._read(lambda c: billing.credits_summary(c, request.match_info["user"]))
        return _json({"data": _money_view(summary)})

    async def add_credits(self, request: web.Request) -> web.Response:
        self._admin(request)
        body = await self._body(request)
        amount = usd(body.get("amount"), "amount")
        note = body.get("note")
        if note is not None and not isinstance(note, str):
            raise InvalidRequest("'note' must be a string", param="note")
        assert amount is not None
        summary = await self._write(lambda c: billing.add_credits(c, request.match_info["user"], amount, note=note))
        return _json({"data": _money_view(summary)})

    async def check_ledger(self, request: web.Request) -> web.Response:
        self._admin(request)
        await self.gw.ledger.flush()
        report = await self._read(billing.check_ledger)
        return _json(
            {"ok": report.ok, "users_checked": report.users_checked, "keys_checked": report.keys_checked, "problems": report.problems}
        )

    # -- channels ------------------------------------------------------------------------------

    async def list_channels(self, request: web.Request) -> web.Response:
        self._admin(request)
        listed = await self._read(channels.list_channels)
        for channel in listed:  # this process's view of each channel's health (breaker, recent errors)
            channel["health"] = self.gw.health.snapshot(channel["id"])
        return _json({"data": listed})

    async def add_channel(self, request: web.Request) -> web.Response:
        self._admin(request)
        body = await self._body(request)
        for name in ("provider", "api_key", "base_url", "name"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise InvalidRequest(f"'{name}' must be a string", param=name)
        models = body.get("models")
        if models is not None and not isinstance(models, (str, list, dict)):
            raise InvalidRequest("'models' is a list of catalog ids (optionally ID=UPSTREAM_ID)", param="models")
        priority = _int_field(body, "priority", 0)
        weight = _int_field(body, "weight", 1)
        catalog = self.gw.directory.catalog
        channel = await self._write(
            lambda c: channels.add_channel(
                c,
                self.gw.box,
                catalog,
                provider=str(body.get("provider") or ""),
                api_key=str(body.get("api_key") or ""),
                base_url=body.get("base_url"),
                name=body.get("name"),
                models=models,
                priority=priority or 0,
                weight=weight if weight is not None else 1,
                timeouts={name: body[name] for name in channels.TIMEOUT_FIELDS if name in body},
            )
        )
        return _json({"data": channel}, status=201)

    async def update_channel(self, request: web.Request) -> web.Response:
        self._admin(request)
        body = await self._body(request)
        for name in ("api_key", "base_url", "name"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise InvalidRequest(f"'{name}' must be a string", param=name)
        models = body.get("models", channels.KEEP)
        if models is not channels.KEEP and models is not None and not isinstance(models, (str, list, dict)):
            raise InvalidRequest("'models' is a list of catalog ids (optionally ID=UPSTREAM_ID), or null for all", param="models")
        priority, weight = _int_field(body, "priority", None), _int_field(body, "weight", None)
        enabled = _bool_field(body, "enabled")
        catalog = self.gw.directory.catalog
        channel = await self._write(
            lambda c: channels.update_channel(
                c, self.gw.box, catalog, request.match_info["channel"], name=body.get("name"), base_url=body.get("base_url"),
                api_key=body.get("api_key"), models=models, priority=priority, weight=weight, enabled=enabled,
                timeouts={name: body[name] for name in channels.TIMEOUT_FIELDS if name in body},
            )
        )
        return _json({"data": channel})

    async def test_channel(self, request: web.Request) -> web.Response:
        self._admin(request)
        channel = await self._read(lambda c: channels.get_channel(c, request.match_info["channel"]))
        result = await probe_channel(self.gw.directory, channel["id"])
        return _json({"data": asdict(result)})

    async def remove_channel(self, request: web.Request) -> web.Response:
        self._admin(request)
        channel = await self._write(lambda c: channels.remove_channel(c, request.match_info["channel"]))
        return _json({"data": channel})

    # -- statistics ----------------------------------------------------------------------------

    async def stats_overview(self, request: web.Request) -> web.Response:
        self._admin(request)
        days = whole_number(request.query.get("days", "7"), 5)
        days = stats.check_days(days if days is not None else -1)
        await self.gw.ledger.flush()
        overview = await self._read(lambda c: stats.overview(c, days))
        return _json({"data": _money_deep(overview)})

    async def stats_channels(self, request: web.Request) -> web.Response:
        self._admin(request)
        await self.gw.ledger.flush()
        listed = await self._read(channels.list_channels)
        figures = await self._read(stats.channel_stats)
        data = [
            {"id": ch["id"], "name": ch["name"], **(figures.get(ch["id"]) or stats.empty_channel_stats())} for ch in listed
        ]
        return _json({"data": data})

    # -- models --------------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        self._admin(request)
        catalog = self.gw.directory.catalog
        return _json({"data": [catalog_service.model_public(m) for m in catalog.models.values()]})

    async def add_model(self, request: web.Request) -> web.Response:
        self._admin(request)
        body = await self._body(request)
        for name in ("id", "provider", "upstream_id", "name", "kind"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise InvalidRequest(f"'{name}' must be a string", param=name)
        model = await self._write(
            lambda c: catalog_service.add_model(
                c,
                str(body.get("id") or ""),
                provider=str(body.get("provider") or ""),
                upstream_id=body.get("upstream_id"),
                name=body.get("name"),
                input_price=usd(body.get("input_price"), "input_price", allow_none=True),
                output_price=usd(body.get("output_price"), "output_price", allow_none=True),
                cached_input_price=usd(body.get("cached_input_price"), "cached_input_price", allow_none=True),
                context_length=_int_field(body, "context_length", None),
                max_output_tokens=_int_field(body, "max_output_tokens", None),
                kind=str(body.get("kind") or "chat"),
            )
        )
        return _json({"data": catalog_service.model_public(model)}, status=201)

    async def set_model(self, request: web.Request) -> web.Response:
        self._admin(request)
        body = await self._body(request)
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise InvalidRequest("'enabled' must be true or false", param="enabled")
        model = await self._write(
            lambda c: catalog_service.set_model(
                c,
                request.match_info["model"],
                input_price=usd(body.get("input_price"), "input_price", allow_none=True),
                output_price=usd(body.get("output_price"), "output_price", allow_none=True),
                cached_input_price=usd(body.get("cached_input_price"), "cached_input_price", allow_none=True),
                enabled=enabled,
            )
        )
        return _json({"data": catalog_service.model_public(model)})
