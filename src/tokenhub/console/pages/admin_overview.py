"""Operators: requests, tokens, revenue against upstream cost, top customers, errors."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from aiohttp import web

from tokenhub.billing import stats
from tokenhub.console.core import Ctx, Pages, error_text, page
from tokenhub.console.i18n import DEFAULT_LANGUAGE, catalog
from tokenhub.digits import whole_number
from tokenhub.errors import GatewayError
from tokenhub.money import nanos_to_decimal

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 720, 220, 28


def admin_error_text(ctx: Ctx, err: GatewayError) -> str:
    """A service error on an operator page: ``admin.error.<code>`` / ``admin.error.param.<param>``, else the shared texts."""
    known = catalog(DEFAULT_LANGUAGE)
    for key in (f"admin.error.{err.code}", f"admin.error.param.{err.param}"):
        if key in known:
            return ctx.t(key)
    return error_text(ctx.t, err)


def usd_approx(nanos: int) -> str:
    """Readable money for the overview: cents from $1 up, four decimals below (the exact amount goes in a title)."""
    amount = nanos_to_decimal(abs(nanos))
    places = Decimal("0.01") if amount >= 1 else Decimal("0.0001")
    text = f"{amount.quantize(places, rounding=ROUND_HALF_UP):,}"
    if amount < 1:
        text = text.rstrip("0").rstrip(".") or "0"
    return ("-" if nanos < 0 and text != "0" else "") + "$" + text


def day_chart(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometry of the revenue / upstream cost bars, one pair per day, for an inline SVG (no script, no style)."""
    top = max([max(d["revenue_nanos"], d["upstream_cost_nanos"]) for d in days] + [1])
    plot_h = CHART_HEIGHT - 2 * CHART_PAD
    slot = (CHART_WIDTH - CHART_PAD) / max(len(days), 1)
    bar = max(min(slot * 0.36, 28), 1.5)
    label_every = max(1, len(days) // 10)  # about ten date labels, whatever the window
    bars = []
    for i, d in enumerate(days):
        x = CHART_PAD + i * slot + (slot - 2 * bar) / 2
        revenue_h = plot_h * d["revenue_nanos"] / top
        cost_h = plot_h * d["upstream_cost_nanos"] / top
        bars.append({
            "day": d["day"], "revenue_nanos": d["revenue_nanos"], "upstream_cost_nanos": d["upstream_cost_nanos"],
            "x": round(x, 1), "w": round(bar, 1), "bottom": CHART_HEIGHT - CHART_PAD,
            "revenue_y": round(CHART_HEIGHT - CHART_PAD - revenue_h, 1), "revenue_h": round(revenue_h, 1),
            "cost_x": round(x + bar, 1), "cost_y": round(CHART_HEIGHT - CHART_PAD - cost_h, 1), "cost_h": round(cost_h, 1),
            "label": d["day"][5:] if i % label_every == 0 else None, "label_x": round(x + bar, 1),
        })
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "pad": CHART_PAD, "top_nanos": top, "bars": bars}


class OverviewPages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin", self.index)]

    @page("admin")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        days = whole_number(ctx.request.query.get("days"), 3)
        days = days if days in stats.WINDOW_DAYS else 7
        await self.gw.ledger.flush()  # requests that just ended count
        async with self.gw.engine.connect() as conn:
            overview = await stats.overview(conn, days)
        return self.render(
            ctx, "admin_overview.html", title=ctx.t("admin.overview.title"), o=overview, days=days, windows=stats.WINDOW_DAYS,
            chart=day_chart(overview["by_day"]), approx=usd_approx,
        )
