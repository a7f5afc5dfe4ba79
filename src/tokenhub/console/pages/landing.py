"""The front page for visitors: what TokenHub is, the four-step quick start, and the providers with their models.

``/`` is the dashboard once signed in; signed out, ``DashboardPages`` renders this. Everything shown is
public anyway (the catalog, the base URL, code with a key placeholder). The sign-up step follows
``TOKENHUB_SIGNUP``: a link to the form when open, "by invitation" or "ask the operator" otherwise.
"""

from __future__ import annotations

from aiohttp import web

from tokenhub.console.core import Ctx, Pages
from tokenhub.console.pages.catalog import Filters, base_url, provider_groups
from tokenhub.console.pages.docs import quick_start


def render_landing(pages: Pages, ctx: Ctx) -> web.Response:
    catalog = pages.gw.directory.catalog
    base = base_url(ctx.request)
    providers = [(group.id, group.name, group.count) for group in provider_groups(catalog, Filters(), ctx.t, ctx.lang)]
    return pages.render(
        ctx, "landing.html", title=ctx.t("landing.title"), base_url=base, quick=quick_start(catalog, base),
        providers=providers, model_count=sum(count for _, _, count in providers), signup=pages.gw.settings.signup,
    )  # fmt: skip
