"""Operations endpoints: liveness, readiness and Prometheus metrics (no key needed; expose them only
to your infrastructure)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from tokenhub.metrics import BREAKER_VALUES
from tokenhub.surface import RouteGroup


class OpsAPI(RouteGroup):
    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.live),
            web.get("/readyz", self.ready),
            web.get("/metrics", self.metrics),
        ]

    async def live(self, request: web.Request) -> web.Response:
        """The process answers: it is alive."""
        return web.json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        """Fit to take traffic: not draining, the directory loaded, the database (and Redis, if used) answering."""
        gw = self.gw
        problems = []
        if gw.draining:
            problems.append("draining")
        if gw.directory.version < 0:
            problems.append("directory not loaded")
        try:
            async with gw.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # report, never raise: this is a probe
            problems.append(f"database unreachable ({type(exc).__name__})")
        ping = getattr(gw.rates, "ping", None)
        if ping is not None and not await ping():
            problems.append("redis unreachable")
        status = 503 if problems else 200
        return web.json_response({"status": "ready" if not problems else "not ready", "problems": problems}, status=status)

    async def metrics(self, request: web.Request) -> web.Response:
        gw = self.gw
        for channel in {r.channel for routes in gw.directory.all_routes() for r in routes}:
            gw.metrics.breaker.labels(channel.name).set(BREAKER_VALUES.get(gw.health.snapshot(channel.id)["state"], 0))
        return web.Response(body=gw.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
