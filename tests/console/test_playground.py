"""The playground in a real browser against a real gateway and fake upstreams: streaming chat billed
exactly like the API, images and video through the fake Ark, CSRF, and one key per user."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from tests.conftest import UPSTREAM_KEY
from tests.console.conftest import csrf_of, log_in, make_user
from tests.support.scenarios import MODEL, cost_nanos, priced_model
from tokenhub.accounts import service as accounts
from tokenhub.billing import service as billing
from tokenhub.money import format_usd, usd_to_nanos
from tokenhub.storage.tables import requests

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
IMAGE_MODEL = "bytedance/doubao-seedream-5.0"
VIDEO_MODEL = "bytedance/doubao-seedance-2.0"


@pytest.fixture
def console(make_gateway, sqlite_url):
    """The console's gateway, polling video tasks quickly."""
    return make_gateway(sqlite_url, task_poll_base=0.02)


@pytest.fixture
def ready(console, upstream_url, media_servers):
    priced_model(console, upstream_url)
    console.channel("ark", media_servers["ark"].url + "/api/v3", api_key=UPSTREAM_KEY, name="ark")
    return console


def customer(console, new_page, email: str, credits: str = "10", **options) -> Page:
    user = make_user(console, email)
    if usd_to_nanos(credits):
        console.write(lambda c: billing.add_credits(c, user["id"], usd_to_nanos(credits), note="test"))
    page = new_page(**options)
    log_in(page, email)
    return page


def chat(page: Page, text: str) -> None:
    page.fill("#chat-input", text)
    page.keyboard.press("Enter")


def last_usage(page: Page) -> tuple[int, int, str]:
    usage = page.get_by_test_id("reply-usage").last
    expect(usage).to_be_visible()
    match = re.fullmatch(r"(\d+) tokens in · (\d+) tokens out · cost \$([0-9.]+)", usage.inner_text())
    assert match, usage.inner_text()
    return int(match[1]), int(match[2]), match[3]


def playground_keys(console, email: str) -> list[dict]:
    return [k for k in console.read(lambda c: accounts.list_keys(c, email)) if k["name"] == "Playground"]


def request_rows(console, user_id: int) -> list:
    return console.read(lambda c: _rows(c, user_id))


async def _rows(conn, user_id: int) -> list:
    return (await conn.execute(select(requests).where(requests.c.user_id == user_id).order_by(requests.c.created_at))).all()


def test_streaming_chat_shows_tokens_and_the_exact_charge(ready, new_page, fake_openai):
    console = ready
    page = customer(console, new_page, "chat@example.com")
    page.goto(f"/playground?model={MODEL}")
    expect(page.locator("#chat-model")).to_have_value(MODEL)
    assert playground_keys(console, "chat@example.com") == []  # created on first use, not by looking

    chat(page, "hello there friend")
    expect(page.get_by_test_id("transcript")).to_contain_text("Hello! This is a fake reply.")
    prompt, completion, cost = last_usage(page)
    assert (prompt, completion) == (3 + 3, 6)  # the fake: 3 + words per message; 6 pieces
    assert usd_to_nanos(cost) == cost_nanos(prompt, completion)
    sent = fake_openai.requests[-1].json
    assert sent["stream"] is True and sent["model"] == "upstream-priced"

    credits = console.credits("chat@example.com")
    assert credits["total_usage_nanos"] == usd_to_nanos(cost)
    assert credits["balance_nanos"] == usd_to_nanos("10") - usd_to_nanos(cost)
    [key] = playground_keys(console, "chat@example.com")
    assert key["used_nanos"] == usd_to_nanos(cost)
    user_id = key["user_id"]
    [row] = request_rows(console, user_id)
    assert (row.key_id, row.cost_nanos, row.state, bool(row.stream)) == (key["id"], usd_to_nanos(cost), "settled", True)
    ledger = console.read(lambda c: billing.ledger_history(c, user_id))
    charges = [e for e in ledger if e["request_id"] == row.id and e["kind"] == "charge"]
    assert [-e["amount_nanos"] for e in charges] == [usd_to_nanos(cost)]

    # The conversation goes on with its history; the same key is used again.
    chat(page, "and again")
    expect(page.get_by_test_id("reply-usage")).to_have_count(2)
    _, _, second = last_usage(page)
    assert [m["role"] for m in fake_openai.requests[-1].json["messages"]] == ["user", "assistant", "user"]
    assert len(playground_keys(console, "chat@example.com")) == 1
    assert console.credits("chat@example.com")["total_usage_nanos"] == usd_to_nanos(cost) + usd_to_nanos(second)
    assert console.ledger_report().ok

    # The key is listed with the user's keys, with its spending.
    page.goto("/keys")
    row = page.locator("tr", has_text="Playground")
    expect(row).to_contain_text(f"${format_usd(usd_to_nanos(cost) + usd_to_nanos(second))}")


def test_chat_errors_are_shown(ready, new_page):
    page = customer(ready, new_page, "poor@example.com", credits="0")
    page.goto(f"/playground?model={MODEL}")
    chat(page, "hello")
    expect(page.get_by_test_id("reply-error")).to_contain_text("Error:")
    expect(page.get_by_test_id("reply-error")).to_contain_text("balance")
    # An upstream failure mid-stream ends the reply with its error.
    ready.write(lambda c: billing.add_credits(c, "poor@example.com", usd_to_nanos("1"), note="t"))
    chat(page, "break please #fake:error_mid")
    expect(page.get_by_test_id("reply-error")).to_have_count(2)
    assert ready.ledger_report().ok


def test_requests_without_a_valid_csrf_token_are_refused(ready, new_page, fake_openai):
    page = customer(ready, new_page, "csrf@example.com")
    page.goto("/playground")
    token = csrf_of(page)
    form = {"model": MODEL, "messages": json.dumps([{"role": "user", "content": "hi"}])}
    for url in ("/playground/chat", "/playground/images", "/playground/videos"):
        for extra, headers in (({}, {}), ({"csrf": "0" * 64}, {}), ({"csrf": token}, {"Origin": "https://evil.example"})):
            answer = page.request.post(url, form={**form, **extra}, headers=headers)
            assert answer.status == 403, (url, extra)
            assert answer.json()["error"]["code"] == "csrf_failed"
    # Signed out: 401, in the API's format.
    stranger = new_page()
    stranger.goto("/login")
    answer = stranger.request.post("/playground/chat", form={**form, "csrf": csrf_of(stranger)})
    assert answer.status == 401 and answer.json()["error"]["type"] == "authentication_error"
    assert stranger.request.get("/playground/videos/tsk-x").status == 401
    assert fake_openai.requests == []  # nothing reached the upstream
    assert playground_keys(ready, "csrf@example.com") == []
    # Bad input: the API's errors, never a 500.
    bad = [
        ({"model": MODEL, "messages": "not json"}, "/playground/chat", 400, "messages"),
        ({"model": MODEL, "messages": "[]"}, "/playground/chat", 400, "messages"),
        ({"model": "no/such", "messages": form["messages"]}, "/playground/chat", 404, "model"),
        ({**form, "max_tokens": "lots"}, "/playground/chat", 400, "max_tokens"),
        ({**form, "temperature": "9"}, "/playground/chat", 400, "temperature"),
        ({"model": IMAGE_MODEL, "prompt": ""}, "/playground/images", 400, "prompt"),
        ({"model": IMAGE_MODEL, "prompt": "x", "n": "99"}, "/playground/images", 400, "n"),
        ({"model": MODEL, "prompt": "x"}, "/playground/images", 400, "model"),
        ({"model": VIDEO_MODEL, "prompt": "x", "duration": "999"}, "/playground/videos", 400, "duration"),
    ]
    for fields, url, status, param in bad:
        answer = page.request.post(url, form={**fields, "csrf": token})
        assert answer.status == status, (fields, answer.text())
        assert answer.json()["error"]["param"] == param
    assert page.request.get("/playground/videos/tsk-nope").status == 404
    assert ready.credits("csrf@example.com")["total_usage_nanos"] == 0


def test_each_user_uses_only_their_own_playground_key(ready, new_page):
    alice = customer(ready, new_page, "alice@example.com")
    bob = customer(ready, new_page, "bob@example.com")
    ready.key("bob@example.com", name="Playground-ish")  # a look-alike name is not the key
    ready.key("alice@example.com", name="Playground")  # a user's own "Playground" key is theirs to use
    for page in (alice, bob):
        page.goto(f"/playground?model={MODEL}")
        chat(page, "who am I")
        last_usage(page)
    [alice_key] = playground_keys(ready, "alice@example.com")
    [bob_key] = playground_keys(ready, "bob@example.com")
    assert alice_key["id"] != bob_key["id"]
    for email, key in (("alice@example.com", alice_key), ("bob@example.com", bob_key)):
        rows = request_rows(ready, key["user_id"])
        assert [r.key_id for r in rows] == [key["id"]]
        assert key["used_nanos"] == rows[0].cost_nanos == ready.credits(email)["total_usage_nanos"] > 0

    # Revoked, the key is replaced by a new one on next use; the old one is never used again.
    alice.goto("/keys")
    alice.once("dialog", lambda dialog: dialog.accept())
    alice.locator("tr", has_text="Playground").get_by_role("button", name="Revoke").click()
    alice.goto(f"/playground?model={MODEL}")
    chat(alice, "again")
    last_usage(alice)
    keys = playground_keys(ready, "alice@example.com")
    assert len(keys) == 2 and keys[0]["revoked_at"] is not None and keys[1]["revoked_at"] is None
    rows = request_rows(ready, alice_key["user_id"])
    assert [r.key_id for r in rows] == [alice_key["id"], keys[1]["id"]]


def test_images_and_video_through_the_fake_ark(ready, new_page):
    console = ready
    page = customer(console, new_page, "media@example.com")
    page.goto(f"/playground?model={IMAGE_MODEL}")
    expect(page.locator("#image-model")).to_have_value(IMAGE_MODEL)
    sizes = console.gw.directory.catalog.get(IMAGE_MODEL).image["sizes"]
    expect(page.locator("#image-size option")).to_have_count(1 + len(sizes))
    page.fill("#image-prompt", "a lighthouse at dawn")
    page.select_option("#image-size", "2K")
    page.fill("#image-n", "2")
    page.click("#image-form button[type=submit]")
    links = page.get_by_test_id("image-url")
    expect(links).to_have_count(2)
    for i in range(2):
        assert (links.nth(i).get_attribute("href") or "").startswith("http")
    price = console.gw.directory.catalog.get(IMAGE_MODEL).pricing.per_image
    expect(page.get_by_test_id("image-result")).to_contain_text(f"2 image(s) · cost ${format_usd(2 * price)}")
    assert console.credits("media@example.com")["total_usage_nanos"] == 2 * price

    page.select_option("#video-model", VIDEO_MODEL)
    page.fill("#video-prompt", "a red fox in the snow")
    page.fill("#video-duration", "5")
    page.click("#video-form button[type=submit]")
    expect(page.get_by_test_id("video-task")).to_contain_text("tsk-")
    task_id = page.get_by_test_id("video-task").inner_text().strip()
    expect(page.get_by_test_id("video-status")).to_have_attribute("data-status", "succeeded", timeout=20_000)
    href = page.get_by_test_id("video-url").get_attribute("href") or ""
    assert href.startswith("http")
    console.flush()
    video_cost = console.credits("media@example.com")["total_usage_nanos"] - 2 * price
    assert video_cost > 0
    expect(page.get_by_test_id("video-result")).to_contain_text(f"cost ${format_usd(video_cost)}")
    [key] = playground_keys(console, "media@example.com")
    assert key["used_nanos"] == 2 * price + video_cost

    # Another user cannot see the task.
    other = customer(console, new_page, "nosy@example.com")
    assert other.request.get(f"/playground/videos/{task_id}").status == 404
    assert page.request.get(f"/playground/videos/{task_id}").json()["status"] == "succeeded"


def test_playground_screenshots(ready, new_page, tmp_path):
    target = SCREENSHOTS if os.environ.get("TOKENHUB_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "zh"):
        page = customer(ready, new_page, f"shots-{lang}@example.com", locale="zh-CN" if lang == "zh" else "en-US",
                        viewport={"width": 1100, "height": 1000})  # fmt: skip
        page.goto(f"/playground?model={MODEL}")
        chat(page, "Tell me something nice")
        expect(page.get_by_test_id("reply-usage")).to_be_visible()
        page.screenshot(path=str(target / f"playground-{lang}.png"), full_page=True)
    phone = customer(ready, new_page, "shots-phone@example.com", viewport={"width": 375, "height": 800}, is_mobile=True)
    phone.goto(f"/playground?model={MODEL}")
    chat(phone, "hi")
    expect(phone.get_by_test_id("reply-usage")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.screenshot(path=str(target / "playground-phone-en.png"), full_page=True)
