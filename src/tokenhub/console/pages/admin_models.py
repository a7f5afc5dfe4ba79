"""Operators: models and prices (enable, override prices, serving channels).

The prices customers pay are the catalog's (shipped list prices with the operator's overrides);
the shipped list price is shown next to them, as the upstream cost the overview assumes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tokenhub.billing.stats import list_prices
from tokenhub.catalog import service as catalog_service
from tokenhub.catalog.model import Model, Pricing
from tokenhub.console.core import Ctx, Pages, page, redirect, usd
from tokenhub.console.forms import parse_usd
from tokenhub.console.pages.admin_overview import admin_error_text
from tokenhub.errors import GatewayError, InvalidRequest, NotFound
from tokenhub.money import format_usd

PRICE_FIELDS = (("input", "input_price"), ("cached_input", "cached_input_price"), ("output", "output_price"))
KINDS = ("chat", "image", "video")


def price_lines(pricing: Pricing) -> list[tuple[str, str]]:
    """(label key, amount) for what a model bills: tokens per 1M, images, or seconds of video by mode."""
    lines: list[tuple[str, str]] = []
    if pricing.per_second:
        lines += [("admin.models.per_second", f"{mode}: {usd(price)}") for mode, price in pricing.per_second.items()]
    if pricing.per_image is not None:
        lines.append(("admin.models.per_image", usd(pricing.per_image)))
    lines += [("admin.models.per_image", f"{size}: {usd(price)}") for size, price in pricing.per_image_by_size.items()]
    if not lines:
        lines.append(("admin.models.price_input", usd(pricing.input)))
        if pricing.cached_input is not None:
            lines.append(("admin.models.price_cached", usd(pricing.cached_input)))
        lines.append(("admin.models.price_output", usd(pricing.output)))
    return lines


def model_id_of(value: str | None) -> str:
    model_id = (value or "").strip()
    if not model_id or len(model_id) > 200:
        raise NotFound("no such model", code="model_not_found")
    return model_id


class ModelsPages(Pages):
    NOTICES = {
        "prices_saved": "admin.models.notice_saved",
        "model_enabled": "admin.models.notice_enabled",
        "model_disabled": "admin.models.notice_disabled",
    }

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/models", self.index),
            web.get("/admin/models/edit", self.edit),
            web.post("/admin/models/prices", self.save_prices),
            web.post("/admin/models/enabled", self.set_enabled),
        ]

    def row(self, model: Model, listed: dict[str, Pricing]) -> dict[str, Any]:
        routes = self.gw.directory.routes(model.id)
        list_price = listed.get(model.id)
        return {
            "id": model.id,
            "name": model.name,
            "family": model.family,
            "kind": model.kind,
            "enabled": model.enabled,
            "prices": price_lines(model.pricing),
            "list_prices": price_lines(list_price) if list_price is not None else None,
            "overridden": list_price is not None and list_price != model.pricing,
            "channels": [{"name": r.channel.name, "id": r.channel.id, "upstream_id": r.upstream_id} for r in routes],
            "link": "/admin/models/edit?" + urlencode({"id": model.id}),
        }

    @page("admin")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        query = ctx.request.query.get("q", "").strip()[:200]
        kind = ctx.request.query.get("kind", "")
        kind = kind if kind in KINDS else ""
        listed = list_prices()
        models = [
            self.row(m, listed)
            for m in sorted(self.gw.directory.catalog.models.values(), key=lambda m: (m.family, m.id))
            if (not query or query.lower() in f"{m.id} {m.name}".lower()) and (not kind or m.kind == kind)
        ]
        return self.render(ctx, "admin_models.html", title=ctx.t("admin.models.title"), models=models, query=query, kind=kind, kinds=KINDS)

    @page("admin")
    async def edit(self, ctx: Ctx) -> web.StreamResponse:
        return self.render_edit(ctx, model_id_of(ctx.request.query.get("id")))

    def render_edit(self, ctx: Ctx, model_id: str, *, status: int = 200, error: str | None = None,
                    form: dict[str, str] | None = None) -> web.Response:
        model = self.gw.directory.catalog.get(model_id)
        if model is None:
            raise NotFound("no such model", code="model_not_found")
        row = self.row(model, list_prices())
        if form is None:
            form = {}
            for field, _ in PRICE_FIELDS:
                value = getattr(model.pricing, field)
                form[field] = format_usd(value) if value is not None else ""
        return self.render(
            ctx, "admin_model.html", status=status, title=model.id, model=row, form=form, error=error,
            token_priced=model.kind == "chat",
        )

    @page("admin")
    async def save_prices(self, ctx: Ctx) -> web.StreamResponse:
        model_id = model_id_of(ctx.form.get("model"))
        form = {field: ctx.form.get(field, "").strip() for field, _ in PRICE_FIELDS}
        try:
            prices = {param: parse_usd(form[field], param) for field, param in PRICE_FIELDS if form[field]}
            if not prices:
                raise InvalidRequest("nothing to change", code="nothing_to_change")
            async with self.gw.engine.begin() as conn:
                await catalog_service.set_model(conn, model_id, **prices)
        except NotFound:
            raise
        except GatewayError as err:
            return self.render_edit(ctx, model_id, status=400, error=admin_error_text(ctx, err), form=form)
        await self.gw.directory.refresh_if_changed()  # the new price bills from the next request on
        return redirect("/admin/models/edit?" + urlencode({"id": model_id, "done": "prices_saved"}))

    @page("admin")
    async def set_enabled(self, ctx: Ctx) -> web.StreamResponse:
        model_id = model_id_of(ctx.form.get("model"))
        enabled = ctx.form.get("enabled") == "1"
        async with self.gw.engine.begin() as conn:
            await catalog_service.set_model(conn, model_id, enabled=enabled)
        await self.gw.directory.refresh_if_changed()
        back = ctx.form.get("back") == "list"
        target = "/admin/models?" if back else "/admin/models/edit?" + urlencode({"id": model_id}) + "&"
        return redirect(target + urlencode({"done": "model_enabled" if enabled else "model_disabled"}))
