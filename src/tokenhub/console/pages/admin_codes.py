"""Operators: redemption code batches (create, export, see redemptions, disable)."""

from __future__ import annotations

import csv
import io
from urllib.parse import quote, urlencode

from aiohttp import web

from tokenhub.billing import codes as codes_service
from tokenhub.console.core import Ctx, Pages, error_text, page, redirect, usd
from tokenhub.console.forms import last_day, parse_expiry_date, parse_int, parse_usd
from tokenhub.errors import GatewayError, NotFound
from tokenhub.money import format_usd

MAX_CODES_PER_BATCH = 1000  # per batch from the console (the service allows more, for the CLI)


class CodesPages(Pages):
    NOTICES = {"batch_disabled": "codes.notice_disabled"}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/codes", self.admin_codes),
            web.post("/admin/codes", self.admin_codes),
            web.post("/admin/codes/{batch_id}/disable", self.disable_batch),
        ]

    @page("admin")
    async def admin_codes(self, ctx: Ctx) -> web.StreamResponse:
        created, error, status = None, None, 200
        form = {"amount": "", "count": "", "expires": "", "label": ""}
        if ctx.request.method == "POST":
            form = {name: ctx.form.get(name, "").strip() for name in form}
            try:
                amount = parse_usd(form["amount"], "amount")
                count = parse_int(form["count"], "count", low=1, high=MAX_CODES_PER_BATCH)
                expires_at = parse_expiry_date(form["expires"])
                async with self.gw.engine.begin() as conn:
                    batch = await codes_service.create_batch(
                        conn, amount, count, expires_at=expires_at, label=form["label"] or None, created_by=ctx.user_id
                    )
                created = {
                    "batch_id": batch.batch_id,
                    "codes": list(batch),
                    "amount": usd(amount),
                    "csv": "data:text/csv;charset=utf-8," + quote(codes_csv(list(batch), amount, batch.batch_id)),
                }
                form = {name: "" for name in form}
            except GatewayError as err:
                error, status = error_text(ctx.t, err), 400
        selected = ctx.request.query.get("batch", "")[:64]
        selected_codes = None
        async with self.gw.engine.connect() as conn:
            batches = await codes_service.list_batches(conn)
            if selected:
                try:
                    selected_codes = await codes_service.list_codes(conn, selected)
                except NotFound:
                    selected, selected_codes = "", None
        for batch in batches:
            batch["expires_on"] = last_day(batch["expires_at"])
            batch["link"] = "/admin/codes?" + urlencode({"batch": batch["batch_id"]})
        return self.render(
            ctx, "codes.html", status=status, title=ctx.t("codes.title"), batches=batches, created=created, error=error,
            form=form, selected=selected, selected_codes=selected_codes, max_count=MAX_CODES_PER_BATCH,
        )

    @page("admin")
    async def disable_batch(self, ctx: Ctx) -> web.StreamResponse:
        batch_id = ctx.request.match_info["batch_id"]
        async with self.gw.engine.begin() as conn:
            await codes_service.list_codes(conn, batch_id)  # NotFound for an unknown batch
            await codes_service.disable_codes(conn, batch_id=batch_id)
        return redirect("/admin/codes?" + urlencode({"batch": batch_id, "done": "batch_disabled"}))


def codes_csv(codes: list[str], amount_nanos: int, batch_id: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "amount_usd", "batch_id"])
    for code in codes:
        writer.writerow([code, format_usd(amount_nanos), batch_id])
    return out.getvalue()
