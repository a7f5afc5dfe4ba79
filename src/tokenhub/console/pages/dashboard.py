"""The home page: balance, spend over the last 30 days (a chart by day and model), totals, recent requests.

The chart is an inline SVG computed here, on the server: no script, nothing for the CSP to refuse. Its
numbers are also in a table below it (for screen readers, and for anyone who wants the exact figures).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from tokenhub.accounts import service as accounts
from tokenhub.billing import service as billing
from tokenhub.billing import usage
from tokenhub.billing.usage import UsageFilter
from tokenhub.console.core import Ctx, Pages, page
from tokenhub.console.pages.landing import render_landing
from tokenhub.console.pages.recovery import verification_notice
from tokenhub.storage.engine import utc_now

PERIOD_DAYS = 30
RECENT = 5
SERIES = 5  # the models with the most spend get a colour each; the others share one
PALETTE = ("#2457d6", "#1a7f37", "#c4320a", "#7a3fc2", "#0e7490")
OTHER_COLOUR = "#8b8f96"
OTHER = ""  # the series of "other models" (the template names it)

# The chart's geometry, in SVG user units (it scales to the card's width).
WIDTH, HEIGHT = 720, 230
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 26


@dataclass
class Chart:
    """What the template draws: bars of stacked segments, the y-axis ticks, the x labels and the legend."""

    bars: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    legend: list[dict[str, Any]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    bottom: int = HEIGHT - BOTTOM


def period_totals(days: list[dict[str, Any]]) -> dict[str, int]:
    return {
        name: sum(d[name] for d in days) for name in ("requests", "prompt_tokens", "completion_tokens", "cost_nanos")
    }


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2, 2.5 or 5 x 10^k (nanos) at or above ``value``: round figures on the y axis."""
    step = 1
    while True:
        for candidate in (step, 2 * step, 5 * step // 2, 5 * step):
            if candidate >= value:
                return candidate
        step *= 10


def spend_chart(days: list[dict[str, Any]], first: date, count: int) -> Chart | None:
    """Daily spend stacked by model over ``count`` days from ``first``; ``None`` when nothing was spent."""
    by_model: dict[str, int] = {}
    for d in days:
        by_model[d["model"]] = by_model.get(d["model"], 0) + d["cost_nanos"]
    ranked = sorted((m for m, cost in by_model.items() if cost > 0), key=lambda m: (-by_model[m], m))
    if not ranked:
        return None
    named = ranked[:SERIES]
    colours = {model: PALETTE[i] for i, model in enumerate(named)}
    series = named + ([OTHER] if len(ranked) > SERIES else [])
    per_day: dict[date, dict[str, int]] = {}
    for d in days:
        model = d["model"] if d["model"] in colours else OTHER
        bucket = per_day.setdefault(d["day"], {})
        bucket[model] = bucket.get(model, 0) + d["cost_nanos"]
    top = nice_ceiling(max(sum(b.values()) for b in per_day.values()))
    chart = Chart()
    plot_height = chart.bottom - TOP
    slot = (chart.right - LEFT) / count
    for index in range(count):
        day = first + timedelta(days=index)
        x = LEFT + index * slot + slot * 0.15
        y = float(chart.bottom)
        segments = []
        for model in series:
            cost = per_day.get(day, {}).get(model, 0)
            if cost <= 0:
                continue
            height = cost / top * plot_height
            y -= height
            segments.append({"model": model, "cost_nanos": cost, "x": round(x, 1), "y": round(y, 1),
                             "width": round(slot * 0.7, 1), "height": round(max(height, 0.5), 1),
                             "fill": colours.get(model, OTHER_COLOUR)})
        chart.bars.append({"day": day, "segments": segments})
        if index % 7 == (count - 1) % 7:  # a label a week, ending today
            chart.labels.append({"x": round(x + slot * 0.35, 1), "text": day.strftime("%m-%d")})
    for fraction in (0, 0.5, 1):
        chart.ticks.append({"y": round(chart.bottom - fraction * plot_height, 1), "nanos": int(top * fraction)})
    chart.legend = [{"model": m, "fill": colours.get(m, OTHER_COLOUR), "cost_nanos": _series_cost(m, by_model, named)}
                    for m in series]
    return chart


def _series_cost(model: str, by_model: dict[str, int], named: list[str]) -> int:
    if model != OTHER:
        return by_model[model]
    return sum(cost for m, cost in by_model.items() if m not in named)


class DashboardPages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self.dashboard)]

    @page("any")
    async def dashboard(self, ctx: Ctx) -> web.StreamResponse:
        if ctx.user is None:
            return render_landing(self, ctx)  # visitors get the front page
        today = utc_now().date()
        first = today - timedelta(days=PERIOD_DAYS - 1)
        async with self.gw.engine.connect() as conn:
            summary = await billing.credits_summary(conn, ctx.user_id)
            days = await usage.daily_usage(conn, ctx.user_id, UsageFilter().days(first, today))
            recent = await usage.list_requests(conn, ctx.user_id, UsageFilter(), limit=RECENT)
            keys = await accounts.list_keys(conn, ctx.user_id)
        return self.render(
            ctx, "dashboard.html", title=ctx.t("dashboard.title"), summary=summary, period=period_totals(days),
            days=days, chart=spend_chart(days, first, PERIOD_DAYS), recent=recent,
            key_names={key["id"]: key["name"] for key in keys}, has_keys=bool(keys), period_days=PERIOD_DAYS,
            first_day=first, today=today, verify=verification_notice(self.shell, ctx),
        )
