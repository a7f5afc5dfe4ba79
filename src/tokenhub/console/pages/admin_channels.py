"""Operators: upstream channels (add, edit, disable, test, statistics).

The upstream key is write-only: the forms never carry it back (an empty key field on edit keeps the
stored one), and every text that could hold it (health, test answers) is redacted first.
Changing the key is a sensitive action: it asks again for the password or a current code (step-up).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tokenhub.billing import stats
from tokenhub.channels import service as channels
from tokenhub.channels.probe import probe_channel
from tokenhub.console.core import Ctx, Pages, page, redirect
from tokenhub.console.forms import parse_int
from tokenhub.console.pages.admin_overview import admin_error_text
from tokenhub.digits import whole_number
from tokenhub.errors import GatewayError, NotFound
from tokenhub.vendors import PROVIDERS

FIELDS = ("provider", "name", "base_url", "api_key", "models", "priority", "weight", *channels.TIMEOUT_FIELDS)


def channel_id_of(ctx: Ctx) -> int:
    channel_id = whole_number(ctx.request.match_info["channel_id"], 12)
    if channel_id is None:
        raise NotFound("no such channel", code="channel_not_found")
    return channel_id


def models_text(mapping: dict[str, str] | None) -> str:
    """{catalog id: upstream id} as the form writes it: ``id`` or ``id=upstream``, comma-separated."""
    return ", ".join(model if model.split("/", 1)[-1] == upstream else f"{model}={upstream}" for model, upstream in (mapping or {}).items())


def form_of(ctx: Ctx) -> dict[str, str]:
    return {name: ctx.form.get(name, "").strip() for name in FIELDS}


def numbers(form: dict[str, str]) -> tuple[int, int]:
    priority = parse_int(form["priority"] or "0", "priority", low=-1_000_000, high=1_000_000)
    weight = parse_int(form["weight"] or "1", "weight", low=1, high=1000)
    return priority, weight


class ChannelsPages(Pages):
    NOTICES = {
        "channel_added": "admin.channels.notice_added",
        "channel_saved": "admin.channels.notice_saved",
        "channel_enabled": "admin.channels.notice_enabled",
        "channel_disabled": "admin.channels.notice_disabled",
    }

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/channels", self.index),
            web.post("/admin/channels", self.add),
            web.get("/admin/channels/{channel_id}", self.edit),
            web.post("/admin/channels/{channel_id}", self.save),
            web.post("/admin/channels/{channel_id}/test", self.test),
            web.post("/admin/channels/{channel_id}/enable", self.enable),
            web.post("/admin/channels/{channel_id}/disable", self.disable),
        ]

    # -- reading ---------------------------------------------------------------------------------

    async def listing(self) -> list[dict[str, Any]]:
        """Every channel with its health in this process and its traffic over the last hour and day."""
        await self.gw.ledger.flush()
        async with self.gw.engine.connect() as conn:
            listed = await channels.list_channels(conn)
            figures = await stats.channel_stats(conn)
        live = {c.id: c for c in self.gw.directory.channels()}
        for channel in listed:
            health = self.gw.health.snapshot(channel["id"])
            if health["last_error"]:
                served = live.get(channel["id"])
                health["last_error"] = served.redact(health["last_error"]) if served else None
            channel["health"] = health
            channel["stats"] = figures.get(channel["id"]) or stats.empty_channel_stats()
            channel["models_text"] = models_text(channel["models"])
        return listed

    def render_index(self, ctx: Ctx, *, status: int = 200, **values: Any) -> web.Response:
        values.setdefault("form", {name: "" for name in FIELDS} | {"provider": "openai-compatible", "priority": "0", "weight": "1"})
        values.setdefault("error", None)
        values.setdefault("probe", None)
        return self.render(ctx, "admin_channels.html", status=status, title=ctx.t("admin.channels.title"), providers=PROVIDERS, **values)

    @page("admin")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        return self.render_index(ctx, channels=await self.listing())

    @page("admin")
    async def edit(self, ctx: Ctx) -> web.StreamResponse:
        return await self.render_edit(ctx, channel_id_of(ctx))

    async def render_edit(self, ctx: Ctx, channel_id: int, *, status: int = 200, error: str | None = None,
                          form: dict[str, str] | None = None) -> web.Response:
        channel = next((c for c in await self.listing() if c["id"] == channel_id), None)
        if channel is None:
            raise NotFound("no such channel", code="channel_not_found")
        if form is None:
            form = {name: str(channel.get(name) or "") for name in FIELDS} | {"models": channel["models_text"], "api_key": ""}
            form["priority"] = str(channel["priority"])
        form["provider"] = channel["provider"]  # fixed once the channel exists
        form["api_key"] = ""  # write-only: never sent back, not even what was just typed
        return self.render(
            ctx, "admin_channel.html", status=status, title=ctx.t("admin.channels.edit_title", name=channel["name"]),
            channel=channel, form=form, error=error, providers=PROVIDERS,
        )

    # -- changing --------------------------------------------------------------------------------

    @page("admin")
    async def add(self, ctx: Ctx) -> web.StreamResponse:
        form = form_of(ctx)
        try:
            priority, weight = numbers(form)
            async with self.gw.engine.begin() as conn:
                await channels.add_channel(
                    conn, self.gw.box, self.gw.directory.catalog, provider=form["provider"], api_key=form["api_key"],
                    base_url=form["base_url"] or None, name=form["name"] or None, models=form["models"] or None,
                    priority=priority, weight=weight, timeouts={name: form[name] for name in channels.TIMEOUT_FIELDS},
                )
        except GatewayError as err:
            form["api_key"] = ""
            return self.render_index(ctx, status=err.status, channels=await self.listing(), form=form, error=admin_error_text(ctx, err))
        await self.gw.directory.refresh_if_changed()
        return redirect("/admin/channels?done=channel_added")

    @page("admin")
    async def save(self, ctx: Ctx) -> web.StreamResponse:
        channel_id = channel_id_of(ctx)
        form = form_of(ctx)
        if form["api_key"]:  # a new upstream key: step-up (the password or a current code again)
            error = await self.shell.confirm_step_up(ctx)
            if error:
                return await self.render_edit(ctx, channel_id, status=403, error=error, form=form)
        try:
            priority, weight = numbers(form)
            async with self.gw.engine.begin() as conn:
                await channels.update_channel(
                    conn, self.gw.box, self.gw.directory.catalog, channel_id, name=form["name"], base_url=form["base_url"],
                    api_key=form["api_key"] or None, models=form["models"] or None, priority=priority, weight=weight,
                    timeouts={name: form[name] for name in channels.TIMEOUT_FIELDS},
                )
        except NotFound:
            raise
        except GatewayError as err:
            return await self.render_edit(ctx, channel_id, status=err.status, error=admin_error_text(ctx, err), form=form)
        await self.gw.directory.refresh_if_changed()
        return redirect("/admin/channels?done=channel_saved")

    async def set_enabled(self, ctx: Ctx, enabled: bool) -> web.StreamResponse:
        async with self.gw.engine.begin() as conn:
            await channels.update_channel(conn, self.gw.box, self.gw.directory.catalog, channel_id_of(ctx), enabled=enabled)
        await self.gw.directory.refresh_if_changed()
        return redirect(f"/admin/channels?done=channel_{'enabled' if enabled else 'disabled'}")

    @page("admin")
    async def enable(self, ctx: Ctx) -> web.StreamResponse:
        return await self.set_enabled(ctx, True)

    @page("admin")
    async def disable(self, ctx: Ctx) -> web.StreamResponse:
        return await self.set_enabled(ctx, False)

    @page("admin")
    async def test(self, ctx: Ctx) -> web.StreamResponse:
        channel_id = channel_id_of(ctx)
        async with self.gw.engine.connect() as conn:
            channel = await channels.get_channel(conn, channel_id)
        try:
            result = await probe_channel(self.gw.directory, channel_id)
            probe = {"channel": channel["name"], "ok": result.ok, "model": result.model, "latency_ms": result.latency_ms,
                     "detail": result.detail}
        except GatewayError as err:
            probe = {"channel": channel["name"], "ok": False, "model": None, "latency_ms": None, "detail": admin_error_text(ctx, err)}
        return self.render_index(ctx, channels=await self.listing(), probe=probe)
