"""The Models catalog in a real browser: providers and counts, filters (with and without JavaScript),
the operator's overrides, and code examples that really run against the gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import log_in, make_user
from tests.support.scenarios import MODEL, cost_nanos, priced_model
from tokenhub.billing import service as billing
from tokenhub.catalog import service as catalog_service
from tokenhub.catalog.loader import load_shipped
from tokenhub.money import format_usd, usd_to_nanos

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def shipped_counts() -> tuple[list, Counter]:
    """Straight from models.yaml: the families, and how many enabled models each has."""
    families, models = load_shipped()
    return families, Counter(m.family for m in models if m.enabled)


def visible_models(page: Page) -> list[str]:
    script = "rows => rows.filter(r => r.offsetParent !== null).map(r => r.dataset.model)"
    return page.eval_on_selector_all("tr[data-model]", script)


def signed_in(console, new_page, email: str = "cat@example.com", **options) -> Page:
    make_user(console, email)
    page = new_page(**options)
    log_in(page, email)
    return page


def test_every_provider_with_its_count_and_description(console, new_page):
    families, counts = shipped_counts()
    assert len(families) >= 10 and sum(counts.values()) >= 50
    page = signed_in(console, new_page)
    page.goto("/models")
    expect(page.locator("h1")).to_have_text("Models")
    expect(page.locator("section[data-provider]")).to_have_count(len([f for f in families if counts[f.id]]))
    for family in families:
        section = page.locator(f"#provider-{family.id}")
        expect(section.locator("h2")).to_have_text(family.name)
        expect(section.get_by_test_id("provider-count")).to_have_text(f"{counts[family.id]} models")
        expect(section.locator(".provider-description")).to_have_text(family.description)
        expect(section.locator("tr[data-model]")).to_have_count(counts[family.id])
    expect(page.get_by_test_id("match-count")).to_have_text(f"{sum(counts.values())} models match.")
    # The catalog's order, not alphabetical.
    assert page.eval_on_selector_all("section[data-provider]", "s => s.map(x => x.dataset.provider)") == [f.id for f in families]

    zh = new_page(locale="zh-CN")
    log_in(zh, "cat@example.com")
    zh.goto("/models")
    expect(zh.locator("h1")).to_have_text("模型")
    for family in families:
        section = zh.locator(f"#provider-{family.id}")
        expect(section.get_by_test_id("provider-count")).to_have_text(f"{counts[family.id]} 个模型")
        expect(section.locator(".provider-description")).to_have_text(family.description_zh)


def test_a_model_row_shows_its_prices_context_and_modalities(console, new_page):
    page = signed_in(console, new_page)
    page.goto("/models")
    row = page.locator("tr[data-model='openai/gpt-4.1']")
    model = console.gw.directory.catalog.get("openai/gpt-4.1")
    p = model.pricing
    expect(row).to_contain_text(f"Input ${format_usd(p.input)} / 1M tokens")
    expect(row).to_contain_text(f"Cached input ${format_usd(p.cached_input)} / 1M tokens")
    expect(row).to_contain_text(f"Output ${format_usd(p.output)} / 1M tokens")
    expect(row).to_contain_text(f"{model.context_length:,}")
    expect(row).to_contain_text("Text, Image → Text")
    image = page.locator("tr[data-model='bytedance/doubao-seedream-5.0']")
    expect(image).to_contain_text("Per image $0.035 / image")
    kling = page.locator("tr[data-model='kling/kling-v3']")
    expect(kling).to_contain_text("Standard mode $0.168 / second")
    expect(kling).to_contain_text("Professional mode with audio $0.28 / second")


def expected(catalog, rule) -> list[str]:
    return [m.id for m in catalog.models.values() if m.enabled and rule(m)]


def in_page_order(page: Page, ids: list[str]) -> list[str]:
    order = page.eval_on_selector_all("tr[data-model]", "rows => rows.map(r => r.dataset.model)")
    return sorted(ids, key=order.index)


@pytest.mark.parametrize("javascript", [False, True], ids=["server", "live"])
def test_filters_narrow_the_list(console, new_page, javascript):
    catalog = console.gw.directory.catalog
    page = signed_in(console, new_page, java_script_enabled=javascript)
    cases = [
        ({"provider": "anthropic"}, lambda m: m.family == "anthropic"),
        ({"modality": "video"}, lambda m: "video" in m.input_modalities + m.output_modalities),
        ({"max_price": "0.5"}, lambda m: m.kind in ("chat", "embedding") and m.pricing.input <= usd_to_nanos("0.5")),
        ({"q": "GROK"}, lambda m: "grok" in (m.id + m.name).lower()),
        ({"q": "flash", "provider": "google", "modality": "image"},
         lambda m: m.family == "google" and "flash" in m.id and "image" in m.input_modalities + m.output_modalities),
    ]  # fmt: skip
    for params, rule in cases:
        want = expected(catalog, rule)
        assert 0 < len(want) < len(expected(catalog, lambda m: True)), params
        if javascript:
            page.goto("/models")
            for name, value in params.items():
                if name in ("provider", "modality"):
                    page.select_option(f"#{name}", value)
                else:
                    page.fill(f"#{name}", value)
        else:
            page.goto("/models?" + "&".join(f"{k}={v}" for k, v in params.items()))
            for name, value in params.items():  # the form keeps what was asked
                expect(page.locator(f"#{name}")).to_have_value(value)
        matches = f"{len(want)} models match." if len(want) > 1 else "1 model matches."
        expect(page.get_by_test_id("match-count")).to_have_text(matches)
        assert visible_models(page) == in_page_order(page, want), params
        families = {catalog.get(i).family for i in want}
        shown = page.eval_on_selector_all("section[data-provider]", "s => s.filter(x => !x.hidden).map(x => x.dataset.provider)")
        assert set(shown) == families, params
    if javascript:
        page.fill("#q", "")
        page.select_option("#provider", "")
        page.select_option("#modality", "")
        page.fill("#max_price", "")
        page.fill("#q", "no-such-model-anywhere")
        expect(page.get_by_test_id("no-match")).to_be_visible()
        page.fill("#q", "")
        assert len(visible_models(page)) == len(expected(catalog, lambda m: True))
    else:
        page.goto("/models?max_price=cheap&provider=openai")
        expect(page.get_by_role("alert")).to_contain_text("Enter the maximum price as a USD amount")
        assert visible_models(page) == expected(catalog, lambda m: m.family == "openai")
        page.goto("/models?q=%3Cscript%3Ealert(1)%3C/script%3E")  # shown back escaped, matches nothing
        expect(page.locator("#q")).to_have_value("<script>alert(1)</script>")
        expect(page.get_by_test_id("no-match")).to_be_visible()


def test_price_overrides_and_disabled_models(console, new_page):
    catalog = console.gw.directory.catalog
    openai_count = sum(1 for m in catalog.models.values() if m.family == "openai" and m.enabled)
    prices = {"input_price": usd_to_nanos("1.234"), "output_price": usd_to_nanos("7")}
    console.write(lambda c: catalog_service.set_model(c, "openai/gpt-4.1", **prices))
    console.write(lambda c: catalog_service.set_model(c, "openai/gpt-5.4", enabled=False))
    page = signed_in(console, new_page)
    page.goto("/models")
    row = page.locator("tr[data-model='openai/gpt-4.1']")
    expect(row).to_contain_text("Input $1.234 / 1M tokens")
    expect(row).to_contain_text("Output $7 / 1M tokens")
    expect(page.locator("tr[data-model='openai/gpt-5.4']")).to_have_count(0)
    expect(page.locator("#provider-openai").get_by_test_id("provider-count")).to_have_text(f"{openai_count - 1} models")
    page.goto("/models/openai/gpt-4.1")
    expect(page.get_by_test_id("prices")).to_contain_text("$1.234")
    response = page.goto("/models/openai/gpt-5.4")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    assert page.goto("/models/no/such-model").status == 404
    # Enabled again: back.
    console.write(lambda c: catalog_service.set_model(c, "openai/gpt-5.4", enabled=True))
    page.goto("/models")
    expect(page.locator("tr[data-model='openai/gpt-5.4']")).to_have_count(1)


def run_example(code: str, language: str, key: str) -> str:
    command = [sys.executable, "-c", code] if language == "python" else ["bash", "-c", code]
    env = {**os.environ, "TOKENHUB_API_KEY": key}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_examples_run_against_this_gateway(console, new_page, upstream_url):
    priced_model(console, upstream_url)
    user = make_user(console, "dev@example.com")
    console.write(lambda c: billing.add_credits(c, user["id"], usd_to_nanos("5"), note="test"))
    key = console.key("dev@example.com", name="examples")
    page = new_page()
    log_in(page, "dev@example.com")
    page.goto("/models")
    page.locator(f"tr[data-model='{MODEL}'] a").click()
    expect(page).to_have_url(f"{console.server.url}/models/{MODEL}")
    expect(page.get_by_test_id("model-id")).to_have_text(MODEL)
    slugs = ("curl", "python", "javascript", "python-stream", "javascript-stream")
    codes = {slug: page.locator(f"#code-{slug}").inner_text() for slug in slugs}
    for code in codes.values():
        assert console.base_url in code and MODEL in code
    assert "key" not in codes["python"].replace("api_key", "").replace("TOKENHUB_API_KEY", "").lower()  # no key in the code

    out = run_example(codes["python"], "python", key)
    assert "Hello! This is a fake reply." in out
    console.flush()
    spent = console.credits("dev@example.com")["total_usage_nanos"]
    prompt = 3 + 1  # the fake counts 3 + words per message: "Hello!"
    assert spent == cost_nanos(prompt, 6)
    assert f"cost (USD): {Decimal(format_usd(spent))}" in out

    out = run_example(codes["python-stream"], "python", key)
    assert "fake reply" in out and "cost (USD):" in out
    out = run_example(codes["curl"], "shell", key)
    assert '"usage"' in out and '"cost"' in out
    console.flush()
    assert console.ledger_report().ok

    # The copy button copies the example.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_test_id("example-python").get_by_role("button", name="Copy").click()
    expect(page.get_by_test_id("example-python").get_by_role("button")).to_have_text("Copied")


def test_media_examples(console, new_page):
    page = signed_in(console, new_page)
    page.goto("/models/bytedance/doubao-seedream-5.0")
    python = page.locator("#code-python").inner_text()
    assert "client.images.generate(" in python and 'size="2K"' in python and console.base_url in python
    compile(python, "example", "exec")
    page.goto("/models/kling/kling-v3")
    expect(page.get_by_test_id("prices")).to_contain_text("$0.224")
    curl = page.locator("#code-curl").inner_text()
    assert f"{console.base_url}/videos/generations" in curl and '"model": "kling/kling-v3"' in curl and '"duration": 5' in curl
    compile(page.locator("#code-python").inner_text(), "example", "exec")
    # Keyboard: the code blocks and copy buttons are reachable.
    page.locator("#code-curl").locator("xpath=..").focus()
    expect(page.locator("pre.code").first).to_be_focused()


def test_catalog_screenshots(console, new_page, tmp_path):
    target = SCREENSHOTS if os.environ.get("TOKENHUB_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    make_user(console, "shots@example.com")
    for lang in ("en", "zh"):
        page = new_page(locale="zh-CN" if lang == "zh" else "en-US", viewport={"width": 1100, "height": 900})
        log_in(page, "shots@example.com")
        page.goto("/models")
        page.screenshot(path=str(target / f"models-{lang}.png"))
        page.goto("/models/openai/gpt-4.1")
        page.screenshot(path=str(target / f"model-{lang}.png"), full_page=True)
    phone = new_page(viewport={"width": 375, "height": 800}, is_mobile=True)
    log_in(phone, "shots@example.com")
    for path, name in (("/models?provider=anthropic", "models-phone-en.png"), ("/models/openai/gpt-4.1", "model-phone-en.png")):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375, path
        phone.screenshot(path=str(target / name), full_page=True)
    for png in target.glob("model*.png"):
        assert png.stat().st_size < 600_000


def test_embedding_models_show_their_price_and_examples_that_run(console, new_page, upstream_url):
    console.channel("openai", upstream_url, name="oa")
    user = make_user(console, "emb@example.com")
    console.write(lambda c: billing.add_credits(c, user["id"], usd_to_nanos("5"), note="test"))
    key = console.key("emb@example.com", name="embeddings")
    page = new_page()
    log_in(page, "emb@example.com")
    page.goto("/models?q=text-embedding")
    expect(page.locator("tr[data-model='openai/text-embedding-3-small']")).to_contain_text("Text → Vectors")
    page.goto("/models/openai/text-embedding-3-small")
    expect(page.get_by_test_id("prices")).to_contain_text("$0.02")
    codes = {slug: page.locator(f"#code-{slug}").inner_text() for slug in ("curl", "python", "javascript")}
    assert all(f"{console.base_url}" in code and "openai/text-embedding-3-small" in code for code in codes.values())
    out = run_example(codes["python"], "python", key)
    assert "2 vectors of 1536 dimensions" in out and "cost (USD):" in out
    assert '"embedding"' in run_example(codes["curl"], "shell", key)
    console.flush()
    assert console.ledger_report().ok
    zh = new_page(locale="zh-CN")
    log_in(zh, "emb@example.com")
    zh.goto("/models/google/gemini-embedding-001")
    expect(zh.get_by_test_id("prices")).to_contain_text("$0.15")
    expect(zh.locator("main")).to_contain_text("向量")
