"""The API reference page: both languages, every endpoint, the same sections and code in each."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import log_in, make_user
from tokenhub.console.render import TEMPLATES

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

ENDPOINTS = [
    "GET /models", "POST /chat/completions", "POST /responses", "GET /responses/{id}", "DELETE /responses/{id}",
    "GET /responses/{id}/input_items", "POST /messages", "POST /messages/count_tokens",
    "POST /v1beta/models/{model}:generateContent", "POST /v1beta/models/{model}:streamGenerateContent?alt=sse",
    "POST /v1beta/models/{model}:countTokens", "POST /v1beta/models/{model}:embedContent",
    "POST /v1beta/models/{model}:batchEmbedContents", "GET /v1beta/models", "POST /embeddings", "POST /completions",
    "POST /images/generations",
    "POST /videos/generations", "GET /videos/generations/{id}", "GET /videos/generations", "GET /credits", "GET /key",
    "GET /generation?id=gen-…",
]  # fmt: skip
SECTION_TITLES = {
    "en": ["Quick start", "Authentication", "Models", "Chat completions", "Responses API", "Anthropic Messages", "Gemini API",
           "Embeddings", "Legacy completions", "OpenRouter fields", "Image generation",
           "Video generation", "Credits", "Current key", "Request details", "Errors"],
    "zh": ["快速开始", "身份验证", "模型列表", "对话补全", "Responses API", "Anthropic Messages", "Gemini API", "向量嵌入",
           "旧版文本补全", "OpenRouter 字段", "图片生成", "视频生成", "余额", "当前密钥",
           "请求详情", "错误"],
}  # fmt: skip


def docs_page(console, new_page, lang: str) -> Page:
    email = f"docs-{lang}@example.com"
    make_user(console, email)
    page = new_page(locale="zh-CN" if lang == "zh" else "en-US")
    log_in(page, email)
    page.goto("/docs")
    return page


def outline(page: Page) -> dict:
    return {
        "sections": page.eval_on_selector_all("section[data-section]", "s => s.map(x => x.id)"),
        "endpoints": page.eval_on_selector_all("[data-endpoint]", "s => s.map(x => x.dataset.endpoint)"),
        "code": page.eval_on_selector_all("pre.code code", "s => s.map(x => [x.id, x.textContent])"),
        "links": page.eval_on_selector_all(".docs a[href^='#']", "s => s.map(x => x.getAttribute('href'))"),
    }


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_docs_list_every_endpoint(console, new_page, lang):
    page = docs_page(console, new_page, lang)
    expect(page.locator("h1")).to_have_text("API reference" if lang == "en" else "API 参考")
    expect(page.get_by_test_id("base-url")).to_have_text(console.base_url)
    expect(page.locator("section[data-section] > h2")).to_have_text(SECTION_TITLES[lang])
    shape = outline(page)
    assert shape["endpoints"] == ENDPOINTS
    toc = page.get_by_role("navigation", name="On this page" if lang == "en" else "本页目录").get_by_role("link")
    expect(toc).to_have_text(SECTION_TITLES[lang])
    assert [f"#{s}" for s in shape["sections"]] == [toc.nth(i).get_attribute("href") for i in range(toc.count())]
    for link in shape["links"]:  # in-page links lead somewhere
        expect(page.locator(link)).to_have_count(1)
    text = page.locator("main").inner_text()
    for needle in ("Authorization: Bearer th-", "x-api-key: th-", '"stream_options": {"include_usage": true}', "data: [DONE]",
                   '"cost": 0.000114', "X-TokenHub-Signature", "insufficient_credits", "model_not_allowed", "webhook_secret"):
        assert needle in text, needle
    for status in (400, 401, 402, 403, 404, 413, 429, 502, 503, 504):
        expect(page.locator("table.errors td", has_text=re.compile(rf"^{status}$"))).to_have_count(1)
    # Code is the same in every language, with this server's base URL; prose is not.
    codes = dict(shape["code"])
    assert f'base_url="{console.base_url}"' in codes["code-quick-python"]
    assert f"curl {console.base_url}/chat/completions" in codes["code-chat-curl"]
    assert f'base_url="{console.base_url[:-3]}"' in codes["code-messages-sdk"]
    assert f'base_url="{console.base_url[:-3]}"' in codes["code-gemini-python"]  # Google's SDKs add /v1beta themselves
    assert f'base_url="{console.base_url}"' in codes["code-responses-python"]


def test_both_languages_have_the_same_reference(console, new_page):
    en_page, zh_page = (docs_page(console, new_page, lang) for lang in ("en", "zh"))
    en, zh = outline(en_page), outline(zh_page)
    assert en == zh
    assert len(en["code"]) >= 25
    en_prose, zh_prose = en_page.locator(".docs").inner_text(), zh_page.locator(".docs").inner_text()
    assert "is asynchronous" in en_prose and "is asynchronous" not in zh_prose and "异步" in zh_prose


def test_the_chinese_reference_has_no_english_sentence_left():
    """The per-language templates are complete translations: no English sentence left in zh.html."""
    zh = (TEMPLATES / "docs" / "zh.html").read_text(encoding="utf-8")
    without_code = re.sub(r"<code[^>]*>.*?</code>|\{[{%#].*?[}%#]\}", " ", zh, flags=re.S)
    prose = re.sub(r"<[^>]+>", " ", without_code)
    english_runs = re.findall(r"[A-Za-z]+(?: [A-Za-z]+){3,}", prose)
    assert english_runs == []


def test_docs_quick_start_compiles_and_json_examples_parse(console, new_page):
    import json

    page = docs_page(console, new_page, "en")
    codes = dict(outline(page)["code"])
    compile(codes["code-quick-python"], "quick", "exec")
    for name in ("messages-sdk", "responses-python", "gemini-python", "embeddings-python"):
        compile(codes[f"code-{name}"], name, "exec")
    for name in ("models-response", "chat-request", "chat-response", "chat-stream-request", "messages-response", "images-request",
                 "images-response", "video-request", "video-task", "credits-response", "key-response", "generation-response",
                 "error-body", "messages-error", "responses-response", "embeddings-response", "openrouter-request"):  # fmt: skip
        json.loads(codes[f"code-{name}"])
    for line in codes["code-chat-stream-response"].splitlines():
        if line.startswith("data: {"):
            json.loads(line[len("data: "):])
    # The JavaScript is at least valid syntax (node checks it as a module).
    node = ["node", "--input-type=module", "--check"]
    done = subprocess.run(node, input=codes["code-quick-javascript"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_docs_screenshots(console, new_page, tmp_path):
    target = SCREENSHOTS if os.environ.get("TOKENHUB_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "zh"):
        page = docs_page(console, new_page, lang)
        page.set_viewport_size({"width": 1100, "height": 900})
        page.screenshot(path=str(target / f"docs-{lang}.png"))
    make_user(console, "docs-phone@example.com")
    phone = new_page(viewport={"width": 375, "height": 800}, is_mobile=True)
    log_in(phone, "docs-phone@example.com")
    phone.goto("/docs#chat")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.screenshot(path=str(target / "docs-phone-en.png"))
