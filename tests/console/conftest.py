"""Console tests: a real gateway (tests.support.harness) and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Callable, Iterator

import pytest
from playwright import sync_api

from tests.support.harness import Harness
from tokenhub.accounts import service as accounts

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"



# One browser for the console package, stopped when the package is done: Playwright's sync API keeps
# an event loop running in the main thread, which would break asyncio.run() in the tests after it.
@pytest.fixture(scope="package")
def browser() -> Iterator[sync_api.Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def console(make_gateway: Callable[..., Harness], sqlite_url: str) -> Harness:
    """A gateway on SQLite; its console is at ``console.server.url``."""
    return make_gateway(sqlite_url)


@pytest.fixture
def open_page(browser: sync_api.Browser) -> Iterator[Callable[..., sync_api.Page]]:
    """``open_page(harness, **context_options)``: a page in a fresh browser context (own cookies), based at that gateway."""
    contexts: list[sync_api.BrowserContext] = []

    def make(harness: Harness, **options: object) -> sync_api.Page:
        options.setdefault("locale", "en-US")
        options.setdefault("viewport", {"width": 1100, "height": 760})
        context = browser.new_context(base_url=harness.server.url, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def new_page(open_page: Callable[..., sync_api.Page], console: Harness) -> Callable[..., sync_api.Page]:
    """``new_page(**context_options)``: a page based at the ``console`` gateway."""
    return lambda **options: open_page(console, **options)


def make_user(console: Harness, email: str, password: str = PASSWORD, *, admin: bool = False) -> dict:
    return console.write(lambda c: accounts.create_user(c, email, password=password, is_admin=admin))


def log_in(page: sync_api.Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def csrf_of(page: sync_api.Page) -> str:
    return page.locator("input[name=csrf]").first.get_attribute("value") or ""


def run_cli(harness: Harness, *args: str, **env: str) -> str:
    """``tokenhub ARGS`` in its own process against this gateway's database (and secret); its stdout. ``env``
    adds settings (``TOKENHUB_PUBLIC_URL=...``)."""
    settings = harness.settings
    variables = {**os.environ, "TOKENHUB_HOME": str(settings.home), "TOKENHUB_DATABASE_URL": settings.database_url, **env}
    if settings.secret_key:
        variables["TOKENHUB_SECRET_KEY"] = settings.secret_key
    done = subprocess.run([sys.executable, "-m", "tokenhub", *args], env=variables, capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    return done.stdout
