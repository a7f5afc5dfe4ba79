"""Stripe top-ups on both databases: authentic webhooks only, each effect once, refunds clamped.

Nothing here reaches Stripe. Webhook bodies are signed here with Stripe's scheme
(``t=<ts>,v1=<HMAC-SHA256 of "<ts>.<body>">``) and verified by the real stripe library; Checkout
Sessions are created against a local fake of ``POST /v1/checkout/sessions``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest
import stripe
from aiohttp import web
from sqlalchemy import insert, select

from tests.support.servers import ServerThread
from tokenhub.accounts.service import create_user
from tokenhub.billing import payments as pay
from tokenhub.billing.service import add_credits, check_ledger
from tokenhub.config import Settings, normalize_database_url
from tokenhub.errors import GatewayError, InvalidRequest, ServiceUnavailable
from tokenhub.storage import migrate
from tokenhub.storage.engine import create_engine, utc_now
from tokenhub.storage.tables import ledger_entries, payments, stripe_events, users

SECRET = "whsec_test_0123456789abcdef"
DOLLAR = 10**9
EMAIL = "payer@example.com"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --------------------------------------------------------------------------- signing and events


def sign(payload: bytes, secret: str = SECRET, t: int | None = None, extra_v1: list[str] | None = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return ",".join([f"t={t}", *(f"v1={v}" for v in (extra_v1 or [])), f"v1={mac}"])


def event(event_id: str, type_: str, obj: dict[str, Any]) -> bytes:
    body = {"id": event_id, "object": "event", "type": type_, "api_version": "2024-06-20", "data": {"object": obj}}
    return json.dumps(body, indent=2).encode()  # Stripe's bodies are pretty-printed: whitespace matters


def session_obj(session_id: str, user_id: int, cents: int, *, paid: bool = True, intent: str | None = "pi_1") -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "amount_total": cents,
        "currency": "usd",
        "payment_status": "paid" if paid else "unpaid",
        "payment_intent": intent,
        "client_reference_id": str(user_id),
        "metadata": {"tokenhub_user_id": str(user_id)},
    }


def completed(event_id: str, session_id: str, user_id: int, cents: int, **kw: Any) -> bytes:
    return event(event_id, "checkout.session.completed", session_obj(session_id, user_id, cents, **kw))


def refunded(event_id: str, intent: str, cents_refunded: int, amount: int) -> bytes:
    charge = {"id": "ch_" + intent, "object": "charge", "payment_intent": intent, "amount": amount, "amount_refunded": cents_refunded}
    return event(event_id, "charge.refunded", charge)


# --------------------------------------------------------------------------- database helpers


async def _setup(url: str) -> tuple[Any, int]:
    engine = create_engine(normalize_database_url(url))
    await migrate.upgrade(engine)
    async with engine.begin() as conn:
        uid = (await create_user(conn, EMAIL))["id"]
    return engine, uid


async def _pending(engine: Any, uid: int, session_id: str, dollars: int) -> None:
    """What create_checkout leaves behind."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(payments).values(
                user_id=uid, checkout_session_id=session_id, amount_nanos=dollars * DOLLAR, currency="usd",
                status="pending", refunded_nanos=0, revoked_nanos=0, created_at=utc_now(),
            )
        )


async def _deliver(engine: Any, payload: bytes, header: str | None = None, secret: str | None = SECRET, now: Any = None) -> dict[str, Any]:
    async with engine.begin() as conn:
        return await pay.handle_webhook(conn, payload, sign(payload) if header is None else header, secret, now=now)


async def _state(engine: Any, uid: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        entries = (await conn.execute(select(ledger_entries).where(ledger_entries.c.user_id == uid).order_by(ledger_entries.c.id))).all()
        report = await check_ledger(conn)
        return {
            "balance": await conn.scalar(select(users.c.balance).where(users.c.id == uid)),
            "entries": [(e.kind, e.amount) for e in entries],
            "notes": [e.note for e in entries],
            "payments": await pay.list_payments(conn, uid),
            "events": (await conn.execute(select(stripe_events).order_by(stripe_events.c.event_id))).all(),
            "ledger_ok": (report.ok, report.problems),
        }


def concurrently(url: str, jobs: list[Callable[[Any], Awaitable[Any]]]) -> list[Any]:
    """Each job in its own thread, event loop, engine and transaction, released together."""
    barrier = threading.Barrier(len(jobs))

    def worker(job: Callable[[Any], Awaitable[Any]]) -> Any:
        async def go() -> Any:
            engine = create_engine(normalize_database_url(url), pool_size=1)
            try:
                async with engine.connect() as warm:
                    await warm.scalar(select(1))
                barrier.wait(30)
                async with engine.begin() as conn:
                    return await job(conn)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(worker, jobs))


def delivery(body: bytes) -> Callable[[Any], Awaitable[Any]]:
    header = sign(body)
    return lambda conn: pay.handle_webhook(conn, body, header, SECRET)


# --------------------------------------------------------------------------- crediting once


def test_a_valid_event_credits_once_and_redeliveries_do_nothing(database_url: str):
    async def scenario() -> None:
        engine, uid = await _setup(database_url)
        await _pending(engine, uid, "cs_1", 25)
        body = completed("evt_1", "cs_1", uid, 2500, intent="pi_1")
        outcomes = [(await _deliver(engine, body))["outcome"] for _ in range(5)]
        assert outcomes == ["credited"] + ["duplicate"] * 4
        state = await _state(engine, uid)
        assert state["balance"] == 25 * DOLLAR and state["entries"] == [("topup", 25 * DOLLAR)]
        assert "cs_1" in state["notes"][0]
        (payment,) = state["payments"]
        assert (payment["status"], payment["payment_intent_id"], payment["amount_nanos"]) == ("paid", "pi_1", 25 * DOLLAR)
        assert payment["paid_at"] is not None
        assert [(e.event_id, e.type, e.outcome) for e in state["events"]] == [("evt_1", "checkout.session.completed", "credited")]
        assert state["ledger_ok"] == (True, [])
        await engine.dispose()

    run(scenario())


def test_the_same_event_delivered_five_times_at_once_credits_once(database_url: str):
    async def setup() -> int:
        engine, uid = await _setup(database_url)
        await _pending(engine, uid, "cs_c", 10)
        await engine.dispose()
        return uid

    uid = run(setup())
    body = completed("evt_c", "cs_c", uid, 1000)
    header = sign(body)
    results = concurrently(database_url, [lambda conn: pay.handle_webhook(conn, body, header, SECRET) for _ in range(5)])
    assert sorted(r["outcome"] for r in results) == ["credited"] + ["duplicate"] * 4

    async def check() -> None:
        engine = create_engine(normalize_database_url(database_url))
        state = await _state(engine, uid)
        assert state["entries"] == [("topup", 10 * DOLLAR)] and state["ledger_ok"] == (True, [])
        await engine.dispose()

    run(check())


def test_different_events_and_the_success_page_for_one_session_at_once_credit_once(database_url: str):
    """completed + async_payment_succeeded (twice each) + the success page's fulfilment, together."""

    async def setup() -> int:
        engine, uid = await _setup(database_url)
        await _pending(engine, uid, "cs_m", 40)
        await engine.dispose()
        return uid

    uid = run(setup())
    obj = session_obj("cs_m", uid, 4000)
    bodies = [
        event("evt_m1", "checkout.session.completed", obj),
        event("evt_m2", "checkout.session.async_payment_succeeded", obj),
        event("evt_m3", "checkout.session.completed", obj),
        event("evt_m4", "checkout.session.async_payment_succeeded", obj),
    ]
    jobs = [delivery(b) for b in bodies]
    jobs.append(lambda conn: pay.fulfil_session(conn, obj))
    results = concurrently(database_url, jobs)
    outcomes = [r["outcome"] for r in results[:4]] + [results[4][0]]
    assert sorted(outcomes) == ["already_credited"] * 4 + ["credited"]

    async def check() -> None:
        engine = create_engine(normalize_database_url(database_url))
        state = await _state(engine, uid)
        assert state["entries"] == [("topup", 40 * DOLLAR)] and state["ledger_ok"] == (True, [])
        assert len(state["events"]) == 4
        await engine.dispose()

    run(check())


def test_async_payment_is_credited_when_it_succeeds_whatever_the_order(database_url: str):
    async def scenario() -> None:
        engine, uid = await _setup(database_url)
        await _pending(engine, uid, "cs_a", 5)
        unpaid = completed("evt_a1", "cs_a", uid, 500, paid=False)
        assert (await _deliver(engine, unpaid))["outcome"] == "not_paid"
        assert (await _state(engine, uid))["entries"] == []
        succeeded = event("evt_a2", "checkout.session.async_payment_succeeded", session_obj("cs_a", uid, 500))
        assert (await _deliver(engine, succeeded))["outcome"] == "credited"
        # A (late, or out-of-order) completed event for the same session, now saying paid.
        assert (await _deliver(engine, completed("evt_a3", "cs_a", uid, 500)))["outcome"] == "already_credited"
        state = await _state(engine, uid)
        assert state["entries"] == [("topup", 5 * DOLLAR)] and state["ledger_ok"] == (True, [])
        await engine.dispose()

    run(scenario())


def test_a_session_created_elsewhere_is_credited_from_its_metadata_once(database_url: str):
    async def scenario() -> None:
        engine, uid = await _setup(database_url)
        assert (await _deliver(engine, completed("evt_x1", "cs_x", uid, 1234, intent="pi_x")))["outcome"] == "credited"
        again = event("evt_x2", "checkout.session.async_payment_succeeded", session_obj("cs_x", uid, 1234, intent="pi_x"))
        assert (await _deliver(engine, again))["outcome"] == "already_credited"
        # No TokenHub user in it, or an unknown one: recorded, not credited.
        foreign = session_obj("cs_y", uid, 999)
        foreign["metadata"], foreign["client_reference_id"] = {}, None
        assert (await _deliver(engine, event("evt_y", "checkout.session.completed", foreign)))["outcome"] == "unmatched"
        assert (await _deliver(engine, completed("evt_z", "cs_z", 99999, 999)))["outcome"] == "unmatched"
        # Not USD: not credited.
        euro = session_obj("cs_e", uid, 999)
        euro["currency"] = "eur"
        assert (await _deliver(engine, event("evt_e", "checkout.session.completed", euro)))["outcome"] == "wrong_currency"
        state = await _state(engine, uid)
        assert state["entries"] == [("topup", 1234 * 10**7)]
        assert [(p["checkout_session_id"], p["status"], p["amount_nanos"]) for p in state["payments"]] == [("cs_x", "paid", 12_340_000_000)]
        assert state["ledger_ok"] == (True, [])
        await engine.dispose()

    run(scenario())


def test_other_event_types_are_recorded_and_ignored(database_url: str):
    async def scenario() -> None:
        engine, uid = await _setup(database_url)
        body = event("evt_pi", "payment_intent.succeeded", {"id": "pi_9", "object": "payment_intent", "amount": 100})
        assert (await _deliver(engine, body))["outcome"] == "ignored"
        assert (await _deliver(engine, body))["outcome"] == "duplicate"
        state = await _state(engine, uid)
        assert state["entries"] == [] and [(e.event_id, e.outcome) for e in state["events"]] == [("evt_pi", "ignored")]
        await engine.dispose()

    run(scenario())


# --------------------------------------------------------------------------- authenticity


def test_only_an_authentic_recent_event_credits(database_url: str):
    async def scenario() -> None:
        engine, uid = await _setup(database_url)
        await _pending(engine, uid, "cs_s", 50)
        body = completed("evt_s", "cs_s", uid, 5000)
        now = int(time.time())
        reserialized = json.dumps(json.loads(body)).encode()  # same JSON, different bytes
        tampered = completed("evt_s", "cs_s", uid, 500000)
        rejected: list[tuple[str, bytes, str | None, str | None, type[GatewayError]]] = [
            ("wrong secret", body, sign(body, "whsec_other"), SECRET, InvalidRequest),
            ("no header", body, "", SECRET, InvalidRequest),
            ("garbage header", body, "v1=abc", SECRET, InvalidRequest),
            ("no v1", body, f"t={now},v0=" + "0" * 64, SECRET, InvalidRequest),
            ("too old", body, sign(body, t=now - 400), SECRET, InvalidRequest),
            ("from the future", body, sign(body, t=now + 400), SECRET, InvalidRequest),
            ("re-serialized after signing", reserialized, sign(body), SECRET, InvalidRequest),
            ("tampered after signing", tampered, sign(body), SECRET, InvalidRequest),
            ("not UTF-8", body + b"\xff", sign(body + b"\xff"), SECRET, InvalidRequest),
            ("empty secret", body, sign(body, ""), "", ServiceUnavailable),
            ("blank secret", body, sign(body, " "), "  ", ServiceUnavailable),
            ("unset secret", body, sign(body), None, ServiceUnavailable),
        ]
        for name, payload, header, secret, error in rejected:
            with pytest.raises(error) as info:
                await _deliver(engine, payload, header, secret)
            assert type(info.value) is error, name
            if error is ServiceUnavailable:
                assert info.value.code == "stripe_not_configured" and "TOKENHUB_STRIPE_WEBHOOK_SECRET" in info.value.message
            else:
                assert info.value.code == "invalid_signature", name
        state = await _state(engine, uid)
        assert state["entries"] == [] and state["events"] == [] and state["payments"][0]["status"] == "pending"

        # The same checks against an injected clock (the exact ±300 s edges: see below).
        at = datetime.fromtimestamp(now, timezone.utc)
        for t in (now - 301, now + 301):
            with pytest.raises(InvalidRequest):
                await _deliver(engine, body, sign(body, t=t), SECRET, now=at)
        assert (await _state(engine, uid))["entries"] == []

        # During secret rotation Stripe sends several v1 values: one matching is enough.
        rotated = sign(body, extra_v1=["a" * 64])
        assert (await _deliver(engine, body, rotated, SECRET))["outcome"] == "credited"
        state = await _state(engine, uid)
        assert state["entries"] == [("topup", 50 * DOLLAR)] and state["ledger_ok"] == (True, [])
        await engine.dispose()

    run(scenario())


def test_webhook_timestamps_follow_an_injected_clock(sqlite_url: str):
    async def scenario() -> None:
        engine, uid = await _setup(sqlite_url)
        body = completed("evt_t", "cs_t", uid, 100)
        then = datetime(2030, 1, 1, tzinfo=timezone.utc)
        t = int(then.timestamp())
        assert (await _deliver(engine, body, sign(body, t=t - 300), SECRET, now=then))["outcome"] == "credited"
        async with engine.connect() as conn:
            received = (await conn.execute(select(stripe_events.c.received_at))).scalar_one()
        assert received.replace(tzinfo=timezone.utc) == then
        await engine.dispose()

    run(scenario())


# --------------------------------------------------------------------------- refunds and disputes


async def _paid(engine: Any, uid: int, session: str, intent: str, dollars: int) -> None:
    await _pending(engine, uid, session, dollars)
    assert (await _deliver(engine, completed("evt_pay_" + session, session, uid, dollars * 100, intent=intent)))["outcome"] == "credited"


async def _spend(engine: Any, uid: int, dollars: int) -> None:
    async with engine.begin() as conn:
        await add_credits(conn, uid, -dollars * DOLLAR, note="spent")


def test_a_full_refund_after_partial_consumption_is_clamped_and_applied_once(database_url: str):
    async def scenario() -> None:
        engine, uid = await _setup(database_url)
        await _paid(engine, uid, "cs_r", "pi_r", 10)
        await _spend(engine, uid, 7)
        body = refunded("evt_r1", "pi_r", 1000, 1000)
        first = await _deliver(engine, body)
        assert (first["outcome"], first["amount_nanos"]) == ("revoked_clamped", 3 * DOLLAR)
        assert (await _deliver(engine, body))["outcome"] == "duplicate"
        assert (await _deliver(engine, refunded("evt_r2", "pi_r", 1000, 1000)))["outcome"] == "already_applied"
        state = await _state(engine, uid)
        assert state["balance"] == 0
        assert state["entries"] == [("topup", 10 * DOLLAR), ("adjustment", -7 * DOLLAR), ("refund", -3 * DOLLAR)]
        assert "clamped" in state["notes"][-1]
        (payment,) = state["payments"]
        assert (payment["status"], payment["refunded_nanos"], payment["revoked_nanos"], payment["unrecovered_nanos"]) == (
            "refunded", 10 * DOLLAR, 3 * DOLLAR, 7 * DOLLAR,
        )
        assert state["ledger_ok"] == (True, [])
        await engine.dispose()

    run(scenario())


def test_partial_refunds_apply_their_increments_once_in_any_order(database_url: str):
    async def scenario() -> None:
        engine, uid = await _setup(database_url)
        await _paid(engine, uid, "cs_p", "pi_p", 10)
        await _spend(engine, uid, 2)
        assert (await _deliver(engine, refunded("evt_p1", "pi_p", 300, 1000)))["amount_nanos"] == 3 * DOLLAR
        # The second refund's event (cumulative $10) arrives, then a stale copy of the first's state.
        second = await _deliver(engine, refunded("evt_p2", "pi_p", 1000, 1000))
        assert (second["outcome"], second["amount_nanos"]) == ("revoked_clamped", 5 * DOLLAR)
        assert (await _deliver(engine, refunded("evt_p0", "pi_p", 300, 1000)))["outcome"] == "already_applied"
        assert (await _deliver(engine, refunded("evt_p2", "pi_p", 1000, 1000)))["outcome"] == "duplicate"
        state = await _state(engine, uid)
        assert state["balance"] == 0
        assert [e for e in state["entries"] if e[0] == "refund"] == [("refund", -3 * DOLLAR), ("refund", -5 * DOLLAR)]
        assert state["payments"][0]["refunded_nanos"] == 10 * DOLLAR and state["payments"][0]["revoked_nanos"] == 8 * DOLLAR
        assert state["ledger_ok"] == (True, [])
        await engine.dispose()

    run(scenario())


def test_a_dispute_revokes_the_whole_payment_once(database_url: str):
    async def scenario() -> None:
        engine, uid = await _setup(database_url)
        await _paid(engine, uid, "cs_d", "pi_d", 10)
        await _paid(engine, uid, "cs_k", "pi_k", 5)  # another payment, untouched
        await _spend(engine, uid, 1)
        dispute = event("evt_d1", "charge.dispute.created", {"id": "dp_1", "object": "dispute", "charge": "ch_d", "payment_intent": "pi_d", "amount": 1000})
        first = await _deliver(engine, dispute)
        assert (first["outcome"], first["amount_nanos"]) == ("revoked", 10 * DOLLAR)
        assert (await _deliver(engine, dispute))["outcome"] == "duplicate"
        # A refund of the disputed charge afterwards takes nothing more and keeps it disputed.
        assert (await _deliver(engine, refunded("evt_d2", "pi_d", 1000, 1000)))["outcome"] == "already_applied"
        # A refund or dispute for a payment we never saw is recorded, nothing else.
        assert (await _deliver(engine, refunded("evt_d3", "pi_unknown", 100, 100)))["outcome"] == "unmatched"
        state = await _state(engine, uid)
        assert state["balance"] == 4 * DOLLAR
        by_session = {p["checkout_session_id"]: p for p in state["payments"]}
        assert by_session["cs_d"]["status"] == "disputed" and by_session["cs_k"]["status"] == "paid"
        assert [e for e in state["entries"] if e[0] == "refund"] == [("refund", -10 * DOLLAR)]
        assert state["ledger_ok"] == (True, [])
        await engine.dispose()

    run(scenario())


def test_a_refund_delivered_five_times_at_once_revokes_once(database_url: str):
    async def setup() -> int:
        engine, uid = await _setup(database_url)
        await _paid(engine, uid, "cs_rc", "pi_rc", 10)
        await engine.dispose()
        return uid

    uid = run(setup())
    bodies = [refunded("evt_rc", "pi_rc", 600, 1000)] * 3 + [refunded(f"evt_rc{i}", "pi_rc", 600, 1000) for i in range(2)]
    results = concurrently(database_url, [delivery(b) for b in bodies])
    assert sorted(r["outcome"] for r in results) == ["already_applied"] * 2 + ["duplicate"] * 2 + ["revoked"]

    async def check() -> None:
        engine = create_engine(normalize_database_url(database_url))
        state = await _state(engine, uid)
        assert state["balance"] == 4 * DOLLAR and state["ledger_ok"] == (True, [])
        await engine.dispose()

    run(check())


# --------------------------------------------------------------------------- checkout


def test_checkout_params_are_whole_cents_within_limits():
    params = pay.build_checkout_params(7, "a@example.com", 12_500_000_000, "https://h/ok?s={CHECKOUT_SESSION_ID}", "https://h/no")
    assert params["mode"] == "payment"
    (item,) = params["line_items"]
    assert item["quantity"] == 1
    assert item["price_data"]["currency"] == "usd" and item["price_data"]["unit_amount"] == 1250
    assert params["client_reference_id"] == "7" and params["metadata"]["tokenhub_user_id"] == "7"
    assert params["payment_intent_data"]["metadata"]["tokenhub_user_id"] == "7"
    assert params["customer_email"] == "a@example.com"
    for bad in (12_345_678_901, 999_999_999, 10_000 * DOLLAR + 10**7, 0, -DOLLAR, 1.5, True):
        with pytest.raises(InvalidRequest):
            pay.build_checkout_params(7, None, bad, "https://h/ok", "https://h/no")  # type: ignore[arg-type]
    assert pay.build_checkout_params(7, None, DOLLAR, "https://h/ok", "https://h/no")["line_items"][0]["price_data"]["unit_amount"] == 100
    assert pay.build_checkout_params(7, None, 10_000 * DOLLAR, "https://h/ok", "https://h/no")
    with pytest.raises(InvalidRequest):
        pay.build_checkout_params(7, None, DOLLAR, "javascript:alert(1)", "https://h/no")


@pytest.fixture
def fake_stripe() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    recorded: list[dict[str, Any]] = []

    async def create_session(request: web.Request) -> web.Response:
        form = await request.post()
        recorded.append({"headers": dict(request.headers), "form": dict(form)})
        sid = f"cs_test_fake{len(recorded)}"
        return web.json_response({"id": sid, "object": "checkout.session", "url": f"https://checkout.stripe.test/{sid}"})

    app = web.Application()
    app.router.add_post("/v1/checkout/sessions", create_session)
    server = ServerThread(app).start()
    yield server.url, recorded
    server.stop()


def _settings(tmp_path: Path, url: str, **stripe_keys: str | None) -> Settings:
    return Settings(home=tmp_path, database_url=normalize_database_url(url), **stripe_keys)  # type: ignore[arg-type]


def test_checkout_refuses_when_stripe_is_not_configured(tmp_path: Path, sqlite_url: str):
    async def scenario() -> None:
        engine, uid = await _setup(sqlite_url)
        for keys in ({}, {"stripe_secret_key": "sk_test_x"}, {"stripe_webhook_secret": SECRET}, {"stripe_secret_key": " ", "stripe_webhook_secret": SECRET}):
            settings = _settings(tmp_path, sqlite_url, **keys)
            assert not pay.stripe_configured(settings)
            with pytest.raises(ServiceUnavailable) as info:
                await pay.create_checkout(engine, settings, uid, 10 * DOLLAR, "https://h/ok", "https://h/no")
            assert info.value.message == pay.NOT_CONFIGURED
        async with engine.connect() as conn:
            assert await pay.list_payments(conn) == []
        await engine.dispose()

    run(scenario())


def test_checkout_creates_a_session_and_the_webhook_credits_it(tmp_path: Path, database_url: str, fake_stripe):
    base, recorded = fake_stripe
    settings = _settings(tmp_path, database_url, stripe_secret_key="sk_test_fake", stripe_webhook_secret=SECRET)

    async def scenario() -> None:
        engine, uid = await _setup(database_url)
        client = stripe.StripeClient("sk_test_fake", base_addresses={"api": base})
        out = await pay.create_checkout(
            engine, settings, uid, 12_500_000_000, "https://h/ok", "https://h/no", idempotency_key="idem-1", client=client
        )
        assert out["checkout_session_id"] == "cs_test_fake1" and out["url"].endswith("cs_test_fake1")
        (req,) = recorded
        assert req["headers"]["Authorization"] == "Bearer sk_test_fake"
        assert req["headers"]["Idempotency-Key"] == "idem-1"
        form = req["form"]
        assert form["mode"] == "payment" and form["client_reference_id"] == str(uid) and form["customer_email"] == EMAIL
        assert form["line_items[0][price_data][unit_amount]"] == "1250"
        assert form["line_items[0][price_data][currency]"] == "usd"
        assert form["metadata[tokenhub_user_id]"] == str(uid)
        async with engine.connect() as conn:
            payment = await pay.get_payment(conn, "cs_test_fake1", user_id=uid)
        assert (payment["status"], payment["amount_nanos"], payment["currency"]) == ("pending", 12_500_000_000, "usd")

        body = completed("evt_full", "cs_test_fake1", uid, 1250, intent="pi_full")
        assert (await _deliver(engine, body))["outcome"] == "credited"
        state = await _state(engine, uid)
        assert state["balance"] == 12_500_000_000 and state["ledger_ok"] == (True, [])
        await engine.dispose()

    run(scenario())


def test_stripe_settings_come_from_the_environment(tmp_path: Path):
    settings = Settings.from_env(
        {"TOKENHUB_HOME": str(tmp_path), "TOKENHUB_STRIPE_SECRET_KEY": "sk_test_1", "TOKENHUB_STRIPE_WEBHOOK_SECRET": " whsec_1 "}
    )
    assert settings.stripe_secret_key == "sk_test_1" and settings.stripe_webhook_secret == "whsec_1"
    assert pay.stripe_configured(settings)
    unset = Settings.from_env({"TOKENHUB_HOME": str(tmp_path), "TOKENHUB_STRIPE_WEBHOOK_SECRET": ""})
    assert unset.stripe_webhook_secret is None and not pay.stripe_configured(unset)


def test_the_timestamp_window_is_symmetric():
    assert pay.WEBHOOK_TOLERANCE == 300
    body = completed("evt_w", "cs_w", 1, 100)
    now = datetime(2030, 5, 1, tzinfo=timezone.utc)
    t = int(now.timestamp())
    for ok in (t - 300, t, t + 300):
        assert pay.verify_event(body, sign(body, t=ok), SECRET, now=now)["id"] == "evt_w"
    for bad in (t - 301, t + 301, t - 86400):
        with pytest.raises(InvalidRequest):
            pay.verify_event(body, sign(body, t=bad), SECRET, now=now)
