"""Email: a forgotten password (a reset link by email), and verifying the address given at sign-up.

- ``/password/forgot`` answers the same page, as fast, whether or not the address has an account: the lookup,
  the link and the email happen in a background task (kept referenced until it ends), so neither the page nor
  its timing tells who has an account. Requests are limited per client address, emails per account.
- ``/password/reset?token=`` shows the new-password form without spending the link (mail scanners fetch
  links); the POST spends it, sets the password, ends every console session of the account and drops its
  other reset links.
- ``/verify?token=`` marks the address verified; ``POST /verify/resend`` sends a new link.
  ``TOKENHUB_SIGNUP_VERIFY``: ``off`` (accounts are created verified), ``optional`` (a notice and a Resend
  button), ``required`` (no API key — nor Playground — until the address is verified).

Emails go out in the language of the page that asked for them, as plain text and HTML (``templates/email/``,
HTML autoescaped), through ``tokenhub.mail.Mailbox``. Without ``TOKENHUB_SMTP_URL`` the forgot page says so,
and the operator hands out a link from ``tokenhub user reset-link EMAIL``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from tokenhub.accounts import recovery
from tokenhub.accounts import service as accounts
from tokenhub.console.core import Ctx, Pages, Shell, error_text, page, redirect, site_url
from tokenhub.console.i18n import translator
from tokenhub.console.ratelimit import FailureWindow
from tokenhub.console.render import TEMPLATES
from tokenhub.errors import GatewayError, InvalidRequest, PermissionDenied
from tokenhub.mail import Mailbox, MailError

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger("tokenhub.console.mail")

FORGOT_PER_ADDRESS = 10  # reset requests per client address ...
FORGOT_WINDOW = 15 * 60  # ... in 15 minutes
EMAILS_PER_ACCOUNT = 3  # reset or verification emails to one account per hour (nobody's inbox is flooded)
SEND_WAIT = 10.0  # seconds a stopping gateway waits for emails still being sent
RESEND_TARGETS = ("/", "/keys")


class Mailer:
    """The console's emails: rendered in the page's language and sent in the background."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.tasks: set[asyncio.Task[None]] = set()
        self.reset_emails = FailureWindow(EMAILS_PER_ACCOUNT, 3600)
        self.verify_emails = FailureWindow(EMAILS_PER_ACCOUNT, 3600)
        self._env: jinja2.Environment | None = None
        self._mailbox: Mailbox | None = None

    @property
    def mailbox(self) -> Mailbox | None:
        """None without ``TOKENHUB_SMTP_URL``."""
        settings = self.shell.gw.settings
        if settings.smtp_url is None:
            return None
        if self._mailbox is None:
            self._mailbox = Mailbox.from_url(settings.smtp_url, settings.mail_from)
        return self._mailbox

    @property
    def env(self) -> jinja2.Environment:
        if self._env is None:
            import jinja2

            self._env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(TEMPLATES / "email"),
                autoescape=jinja2.select_autoescape(enabled_extensions=("html",), disabled_extensions=("txt",), default=True),
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=True,
            )
        return self._env

    def render(self, name: str, lang: str, subject_key: str, **values: Any) -> tuple[str, str, str]:
        """(subject, text, html) of ``email/<name>.txt`` and ``.html`` in ``lang``."""
        t = translator(lang)
        subject = t(subject_key)
        text = self.env.get_template(f"{name}.txt").render(t=t, lang=lang, subject=subject, **values)
        html = self.env.get_template(f"{name}.html").render(t=t, lang=lang, subject=subject, **values)
        return subject, text, html

    def later(self, work: Callable[[], Awaitable[None]], what: str) -> None:
        """Run ``work`` in the background; the task is kept until it ends, and its failure is logged (never raised)."""

        async def run() -> None:
            try:
                await work()
            except MailError as err:  # names the server and the failure, never the credentials
                log.warning("%s: email not sent: %s", what, err)
            except Exception as err:  # noqa: BLE001 - a background task has nobody to raise to
                log.warning("%s: email not sent: %s", what, type(err).__name__)

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self, _app: web.Application | None = None) -> None:
        """Let emails being sent finish (a stopping gateway waits a little for them)."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=SEND_WAIT)

    # -- the emails ---------------------------------------------------------------------------

    def send_reset(self, email: str, lang: str, base: str) -> None:
        async def work() -> None:
            mailbox = self.mailbox
            if mailbox is None:
                return
            async with self.shell.gw.engine.begin() as conn:
                user = await recovery.account_for_reset(conn, email)
                if user is None or self.reset_emails.retry_after(str(user.id)):
                    return  # no account (or too many emails already): nothing is sent, and nothing differs outside
                self.reset_emails.fail(str(user.id))
                token = await recovery.create_reset_link(conn, user)
            minutes = int(recovery.RESET_LIFETIME.total_seconds() // 60)
            url = recovery.reset_url(base, token)
            subject, text, html = self.render("reset", lang, "recovery.email.reset_subject", url=url, minutes=minutes)
            await mailbox.send(user.email, subject, text, html)
            log.info("password reset email sent to user %s", user.id)

        self.later(work, "password reset")

    def send_verify(self, user_id: int, email: str, lang: str, base: str) -> bool:
        """Schedules a verification email; False when none can be sent (no SMTP, or too many this hour)."""
        mailbox = self.mailbox
        if mailbox is None or self.verify_emails.retry_after(str(user_id)):
            return False
        self.verify_emails.fail(str(user_id))

        async def work() -> None:
            async with self.shell.gw.engine.begin() as conn:
                token = await recovery.create_verify_link(conn, user_id, email)
            days = int(recovery.VERIFY_LIFETIME.total_seconds() // 86400)
            url = recovery.verify_url(base, token)
            subject, text, html = self.render("verify", lang, "recovery.email.verify_subject", url=url, days=days)
            await mailbox.send(email, subject, text, html)
            log.info("verification email sent to user %s", user_id)

        self.later(work, "email verification")
        return True


def _mailer(shell: Shell) -> Mailer:
    assert shell.mailer is not None, "the recovery pages are part of every console"
    return shell.mailer


def verify_mode(shell: Shell) -> str:
    return shell.gw.settings.signup_verify


async def after_sign_up(shell: Shell, ctx: Ctx, user: dict[str, Any]) -> None:
    """Called by the sign-up page once the account exists: sends the verification email when one is due."""
    if user.get("email_verified") or verify_mode(shell) == "off":
        return
    _mailer(shell).send_verify(int(user["id"]), user["email"], ctx.lang, site_url(ctx.request))


def verification_notice(shell: Shell, ctx: Ctx) -> dict[str, Any] | None:
    """What ``verify_notice.html`` shows a signed-in user whose address is not verified (None: nothing)."""
    user = ctx.user
    mode = verify_mode(shell)
    if user is None or user.get("email_verified") or mode == "off":
        return None
    can_send = _mailer(shell).mailbox is not None
    if mode == "optional" and not can_send:
        return None  # nothing the user could do about it
    return {"required": mode == "required", "can_send": can_send}


def require_verified_email(shell: Shell, user: dict[str, Any] | None) -> None:
    """``TOKENHUB_SIGNUP_VERIFY=required``: an unverified account gets no API key (nor the Playground's)."""
    if user is not None and verify_mode(shell) == "required" and not user.get("email_verified"):
        raise PermissionDenied("verify your email address before creating API keys", code="email_unverified")


class RecoveryPages(Pages):
    NOTICES = {
        "password_reset": "recovery.notice_reset",
        "verify_sent": "recovery.notice_verify_sent",
        "verify_wait": "recovery.notice_verify_wait",
    }

    def __init__(self, shell: Shell) -> None:
        super().__init__(shell)
        self.mailer = Mailer(shell)
        shell.mailer = self.mailer
        shell.on_shutdown.append(self.mailer.close)
        self.forgot_requests = FailureWindow(FORGOT_PER_ADDRESS, FORGOT_WINDOW)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/password/forgot", self.forgot),
            web.post("/password/forgot", self.forgot),
            web.get("/password/reset", self.reset),
            web.post("/password/reset", self.reset),
            web.get("/verify", self.verify),
            web.post("/verify/resend", self.resend),
        ]

    @page("guest")
    async def forgot(self, ctx: Ctx) -> web.StreamResponse:
        title = ctx.t("recovery.forgot_title")
        values: dict[str, Any] = {"available": self.mailer.mailbox is not None, "sent": False, "email": "", "error": None}
        if ctx.request.method != "POST" or not values["available"]:
            return self.render(ctx, "forgot.html", title=title, **values)
        retry = self.forgot_requests.retry_after(ctx.address)
        if retry:
            minutes = max(1, (retry + 59) // 60)
            response = self.render(
                ctx,
                "error.html",
                status=429,
                title=ctx.t("error.status_429"),
                message=ctx.t("recovery.too_many", minutes=minutes),
            )
            response.headers["Retry-After"] = str(retry)
            return response
        self.forgot_requests.fail(ctx.address)  # every request counts, found or not
        values["email"] = ctx.form.get("email", "").strip()
        try:
            email = accounts.normalize_email(values["email"])
        except GatewayError as err:
            return self.render(ctx, "forgot.html", status=400, title=title, **{**values, "error": error_text(ctx.t, err)})
        self.mailer.send_reset(email, ctx.lang, site_url(ctx.request))  # the same work here, account or not
        return self.render(ctx, "forgot.html", title=title, **{**values, "sent": True})

    @page("any")
    async def reset(self, ctx: Ctx) -> web.StreamResponse:
        title = ctx.t("recovery.reset_title")
        token = (ctx.form.get("token") if ctx.request.method == "POST" else ctx.request.query.get("token")) or ""
        if ctx.request.method != "POST":
            async with self.gw.engine.connect() as conn:
                valid = await recovery.reset_link_valid(conn, token)
            if not valid:
                return self.render(ctx, "reset.html", status=400, title=title, valid=False, token="", error=None)
            return self.render(ctx, "reset.html", title=title, valid=True, token=token, error=None)
        password = ctx.form.get("password", "")
        try:
            if password != ctx.form.get("confirm", ""):
                raise InvalidRequest("the passwords differ", code="passwords_differ")
            async with self.gw.engine.begin() as conn:
                user_id = await recovery.reset_password(conn, token, password)
        except GatewayError as err:  # the link is not spent: the transaction rolled back
            return self.render(ctx, "reset.html", status=400, title=title, valid=True, token=token, error=error_text(ctx.t, err))
        if user_id is None:
            return self.render(ctx, "reset.html", status=400, title=title, valid=False, token="", error=None)
        log.info("password reset by link for user %s", user_id)
        ctx.new_session = self.shell.codec.new()  # this browser too starts signed out: sign in with the new password
        return redirect("/login?done=password_reset")

    @page("any")
    async def verify(self, ctx: Ctx) -> web.StreamResponse:
        async with self.gw.engine.begin() as conn:
            user_id = await recovery.verify_email(conn, ctx.request.query.get("token") or "")
        if user_id is None:
            return self.render(
                ctx,
                "verify.html",
                status=400,
                title=ctx.t("recovery.verify_failed_title"),
                verified=False,
                verify=verification_notice(self.shell, ctx),
            )
        if ctx.user is not None and ctx.user_id == user_id:
            ctx.user["email_verified"] = True
        return self.render(ctx, "verify.html", title=ctx.t("recovery.verified_title"), verified=True, verify=None)

    @page("user")
    async def resend(self, ctx: Ctx) -> web.StreamResponse:
        back = ctx.form.get("next", "/keys")
        back = back if back in RESEND_TARGETS else "/keys"
        user = ctx.user
        assert user is not None
        if user["email_verified"] or verify_mode(self.shell) == "off":
            return redirect(back)
        if not self.mailer.send_verify(ctx.user_id, user["email"], ctx.lang, site_url(ctx.request)):
            return redirect(f"{back}?done=verify_wait")
        return redirect(f"{back}?done=verify_sent")
