"""The console, served at ``/`` by the gateway's app (like PublicAPI: ``Console(app).routes()``).

Each area of the console is a page group in ``console/pages/``; this module only puts them together.
"""

from __future__ import annotations

from aiohttp import web

from tokenhub.console.core import Pages, Shell
from tokenhub.console.pages.account import AccountPages
from tokenhub.console.pages.admin_channels import ChannelsPages
from tokenhub.console.pages.admin_codes import CodesPages
from tokenhub.console.pages.admin_invites import InvitesPages
from tokenhub.console.pages.admin_models import ModelsPages
from tokenhub.console.pages.admin_overview import OverviewPages
from tokenhub.console.pages.admin_users import UsersPages
from tokenhub.console.pages.billing import BillingPages
from tokenhub.console.pages.catalog import CatalogPages
from tokenhub.console.pages.dashboard import DashboardPages
from tokenhub.console.pages.docs import DocsPages
from tokenhub.console.pages.keys import KeysPages
from tokenhub.console.pages.playground import PlaygroundPages
from tokenhub.console.pages.recovery import RecoveryPages
from tokenhub.console.pages.sign_in_with import SignInWithPages
from tokenhub.console.pages.two_factor import TwoFactorPages
from tokenhub.console.pages.usage import UsagePages

GROUPS: tuple[type[Pages], ...] = (
    AccountPages, DashboardPages, KeysPages, UsagePages, BillingPages, CatalogPages, PlaygroundPages, DocsPages,
    OverviewPages, UsersPages, ChannelsPages, ModelsPages, CodesPages, RecoveryPages, InvitesPages,
    TwoFactorPages,
    SignInWithPages,
)


class Console:
    def __init__(self, app: web.Application) -> None:
        notices: dict[str, str] = {}
        for group in GROUPS:
            notices.update(group.NOTICES)
        self.shell = Shell(app, notices)
        self.groups = [group(self.shell) for group in GROUPS]

    def routes(self) -> list[web.RouteDef]:
        return [route for group in self.groups for route in group.routes()]

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        """A page for a console address that does not exist, in the visitor's language."""
        shell = self.shell
        ctx = await shell.context(request)
        response = shell.render(ctx, "error.html", status=404, title=ctx.t("error.status_404"), message=ctx.t("error.page_not_found"))
        return shell.finish(ctx, response)
