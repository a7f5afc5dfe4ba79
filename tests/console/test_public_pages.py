"""The public pages in a real browser, as a visitor who has not signed up: the front page with the four-step
quick start and the providers, the model catalog and a model's page with its code examples, and the API
docs — in English and Chinese — and the same pages, signed in, with the dashboard at ``/``."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.console.conftest import log_in, make_user
from tokenhub.catalog.loader import load_shipped

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

LANGUAGES = {
    "en": {"locale": "en-US", "headline": "One API key for every model", "steps": "Quick start", "models": "Models",
           "docs": "API reference", "count": "{n} models", "login": "Log in"},
    "zh": {"locale": "zh-CN", "headline": "一个 API 密钥，调用所有模型", "steps": "快速开始", "models": "模型",
           "docs": "API 参考", "count": "{n} 个模型", "login": "登录"},
}  # fmt: skip


def shipped_counts() -> tuple[list, Counter, dict[str, set[str]]]:
    families, models = load_shipped()
    enabled = [m for m in models if m.enabled]
    by_family: dict[str, set[str]] = {}
    for model in enabled:
        by_family.setdefault(model.family, set()).add(model.id)
    return [f for f in families if f.id in by_family], Counter(m.family for m in enabled), by_family


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_visitor_reads_the_front_page_catalog_and_docs(console, new_page, lang):
    words = LANGUAGES[lang]
    families, counts, ids = shipped_counts()
    page = new_page(locale=words["locale"])
    assert page.goto("/").status == 200
    expect(page.locator("h1")).to_have_text(words["headline"])
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if lang == "zh" else "en")
    # The four steps: an account, a key, credits, a call; the call's code uses this server's base URL.
    expect(page.get_by_test_id("quick-start-steps").locator("> li")).to_have_count(4)
    base = f"{console.server.url}/api/v1"
    expect(page.get_by_test_id("base-url")).to_have_text(base)
    assert base in page.locator("#code-landing-curl").inner_text()
    assert "TOKENHUB_API_KEY" in page.locator("#code-landing-python").inner_text()
    # Every provider with its model count, in the catalog's order.
    links = page.get_by_test_id("providers").locator("a[data-provider]")
    expect(links).to_have_count(len(families))
    assert links.evaluate_all("ls => ls.map(l => l.dataset.provider)") == [f.id for f in families]
    first = families[0]
    expect(links.first).to_contain_text(words["count"].format(n=counts[first.id]))
    # A provider's models, then one model's page with its examples.
    links.first.click()
    page.wait_for_url(f"**/models?provider={first.id}")
    shown = page.eval_on_selector_all("tr[data-model]", "rs => rs.filter(r => r.offsetParent !== null).map(r => r.dataset.model)")
    assert set(shown) == ids[first.id]
    page.goto(f"/models/{shown[0]}")
    expect(page.get_by_test_id("model-id")).to_have_text(shown[0])
    for example in ("curl", "python", "javascript"):
        code = page.locator(f"#code-{example}").inner_text()
        assert base in code and shown[0] in code
    # The API docs, public too, with the same base URL.
    assert page.goto("/docs").status == 200
    expect(page.locator("h1")).to_have_text(words["docs"])
    expect(page.get_by_test_id("base-url")).to_have_text(base)
    # Signed-out navigation: the public pages, and the ways in.
    expect(page.locator(".guest-links a").first).to_have_text(words["login"])
    assert page.goto("/keys").url.startswith(f"{console.server.url}/login")


def test_signed_in_users_see_the_dashboard_and_the_same_public_pages(console, new_page):
    make_user(console, "reader@example.com")
    page = new_page()
    log_in(page, "reader@example.com")
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator(".guest-links")).to_have_count(0)
    assert page.goto("/models").status == 200 and page.goto("/docs").status == 200
    expect(page.get_by_test_id("base-url")).to_have_text(f"{console.server.url}/api/v1")


def test_the_public_url_names_the_base_everywhere(make_gateway, sqlite_url, open_page):
    gateway = make_gateway(sqlite_url, public_url="https://api.example.com")
    page = open_page(gateway)
    page.goto("/")
    expect(page.get_by_test_id("base-url")).to_have_text("https://api.example.com/api/v1")
    page.goto("/docs")
    expect(page.get_by_test_id("base-url")).to_have_text("https://api.example.com/api/v1")


def test_screenshots(make_gateway, sqlite_url, open_page, tmp_path):
    """The front page (both languages, and on a phone) and the Invites page, into docs/screenshots with
    TOKENHUB_SCREENSHOTS=1."""
    target = SCREENSHOTS if os.environ.get("TOKENHUB_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    gateway = make_gateway(sqlite_url, signup="invite")
    for lang, locale in (("en", "en-US"), ("zh", "zh-CN")):
        page = open_page(gateway, locale=locale, viewport={"width": 1000, "height": 640})
        page.goto("/")
        page.screenshot(path=str(target / f"landing-{lang}.png"), full_page=True)
    phone = open_page(gateway, viewport={"width": 375, "height": 700}, is_mobile=True)
    phone.goto("/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.screenshot(path=str(target / "landing-phone-en.png"))
    make_user(gateway, "boss@example.com", admin=True)
    admin = open_page(gateway, viewport={"width": 1000, "height": 640})
    log_in(admin, "boss@example.com")
    admin.goto("/admin/invites")
    admin.fill("#note", "for Ada")
    admin.click("form[action='/admin/invites'] button[type=submit]")
    admin.screenshot(path=str(target / "admin-invites-en.png"), full_page=True)
    for png in target.glob("*.png"):
        assert png.stat().st_size < 600_000
