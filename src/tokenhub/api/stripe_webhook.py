"""``POST /api/stripe/webhook``: Stripe's signed deliveries (no session, no CSRF: the signature is the check).

The raw body and the ``Stripe-Signature`` header go to ``billing.payments.handle_webhook`` inside
one transaction. A bad signature is a 400 and an unset webhook secret a 503 (both rendered by the
error middleware in the API's JSON error format); everything else, repeats included, is a 200.
"""

from __future__ import annotations

from aiohttp import web

from tokenhub.billing import payments
from tokenhub.surface import RouteGroup


class StripeWebhookAPI(RouteGroup):
    def routes(self) -> list[web.RouteDef]:
        return [web.post(payments.WEBHOOK_PATH, self.webhook)]

    async def webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        gw = self.gw
        async with gw.engine.begin() as conn:
            await payments.handle_webhook(conn, raw, request.headers.get("Stripe-Signature"), gw.settings.stripe_webhook_secret)
        return web.json_response({"received": True})
