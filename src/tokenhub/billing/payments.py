"""Top-ups through Stripe Checkout, credited by Stripe's signed webhook, each effect exactly once.

- ``create_checkout`` asks Stripe for a Checkout Session (one line item in USD cents, the user id
  in ``client_reference_id`` and ``metadata``) and records a ``pending`` payment.
- ``handle_webhook`` verifies the ``Stripe-Signature`` header over the raw body with the stripe
  library (HMAC-SHA256 of ``"<t>.<body>"``, any of several ``v1`` values, constant-time compare)
  and refuses timestamps more than 300 s from now either way. An empty or unset endpoint secret
  is refused before anything else: the endpoint fails closed.
- Stripe delivers at least once and in any order. Each event id is inserted into
  ``stripe_events`` (primary key) in the same transaction as its effect, so a redelivered event
  does nothing; and each effect is itself a compare-and-swap, so two *different* events about one
  payment (``checkout.session.completed`` and ``checkout.session.async_payment_succeeded``, or the
  success page and the webhook together) still credit it once:
  ``UPDATE payments SET status = 'paid' … WHERE checkout_session_id = ? AND status = 'pending'``.
- Refunds and disputes revoke credit once: ``charge.refunded`` carries the charge's cumulative
  ``amount_refunded``, so only the part not yet applied (``payments.refunded_nanos``) is revoked,
  whatever order partial refunds arrive in; ``charge.dispute.created`` counts as a refund of the
  whole payment. Only unconsumed credit can be taken back: the revocation is clamped to the
  spendable balance, which never goes below zero; what could not be recovered stays visible as
  ``refunded_nanos − revoked_nanos`` on the payment.

Functions that take a connection leave the transaction to the caller: commit after
``handle_webhook`` returns, roll back if it raises (Stripe then redelivers the event).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tokenhub.accounts.service import get_user
from tokenhub.billing.service import add_credits
from tokenhub.config import Settings
from tokenhub.digits import whole_number
from tokenhub.errors import InvalidRequest, NotFound, ServiceUnavailable, UpstreamError
from tokenhub.json_body import parse_json
from tokenhub.money import format_usd
from tokenhub.storage import AsyncConnection, AsyncEngine
from tokenhub.storage.engine import as_utc, utc_now
from tokenhub.storage.tables import payments, stripe_events, users

if TYPE_CHECKING:  # the SDK (with requests, ~5 MB) loads when a payment is first made: _stripe()
    import stripe

log = logging.getLogger(__name__)

NANOS_PER_CENT = 10**7
MIN_TOPUP_NANOS = 1 * 10**9  # $1
MAX_TOPUP_NANOS = 10_000 * 10**9  # $10,000
WEBHOOK_TOLERANCE = 300  # seconds, either way
NOT_CONFIGURED = "Stripe is not configured: set TOKENHUB_STRIPE_SECRET_KEY and TOKENHUB_STRIPE_WEBHOOK_SECRET"
WEBHOOK_PATH = "/api/stripe/webhook"

PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


# --------------------------------------------------------------------------- checkout


def stripe_configured(settings: Settings) -> bool:
    """Top-ups need both keys: without the webhook secret a payment could never be credited."""
    return bool((settings.stripe_secret_key or "").strip() and (settings.stripe_webhook_secret or "").strip())


def build_checkout_params(user_id: int, email: str | None, amount_usd_nanos: int, success_url: str, cancel_url: str) -> dict[str, Any]:
    """The Checkout Session parameters for a top-up of ``amount_usd_nanos`` (whole cents, $1 to $10,000)."""
    if isinstance(amount_usd_nanos, bool) or not isinstance(amount_usd_nanos, int):
        raise InvalidRequest("the amount must be a whole number of nanos", param="amount")
    if amount_usd_nanos % NANOS_PER_CENT:
        raise InvalidRequest("the amount must be a whole number of cents", param="amount")
    if not MIN_TOPUP_NANOS <= amount_usd_nanos <= MAX_TOPUP_NANOS:
        raise InvalidRequest(
            f"a top-up must be between ${format_usd(MIN_TOPUP_NANOS)} and ${format_usd(MAX_TOPUP_NANOS)}", param="amount"
        )
    for name, url in (("success_url", success_url), ("cancel_url", cancel_url)):
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 2000:
            raise InvalidRequest(f"{name} must be an http(s) URL", param=name)
    metadata = {"tokenhub_user_id": str(user_id), "tokenhub_amount_nanos": str(amount_usd_nanos)}
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": amount_usd_nanos // NANOS_PER_CENT,
                    "product_data": {"name": f"TokenHub credit (${format_usd(amount_usd_nanos)})"},
                },
            }
        ],
        "client_reference_id": str(user_id),
        "metadata": metadata,
        "payment_intent_data": {"metadata": dict(metadata)},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if email:
        params["customer_email"] = email
    return params


def _stripe() -> Any:
    import stripe

    return stripe


def stripe_client(settings: Settings) -> stripe.StripeClient:
    if not stripe_configured(settings):
        raise ServiceUnavailable(NOT_CONFIGURED, code="stripe_not_configured")
    return _stripe().StripeClient(str(settings.stripe_secret_key).strip(), max_network_retries=2)


async def create_checkout(
    engine: AsyncEngine,
    settings: Settings,
    user_id: int,
    amount_usd_nanos: int,
    success_url: str,
    cancel_url: str,
    *,
    idempotency_key: str | None = None,
    client: stripe.StripeClient | None = None,
) -> dict[str, Any]:
    """Create a Checkout Session and record the pending payment; returns ``{"url", "checkout_session_id", ...}``.

    Takes the engine rather than a connection: no database transaction is held open across the
    call to Stripe (on SQLite an open write transaction would stall every other writer for the
    round trip). If the pending row cannot be written after Stripe answered, the webhook still
    credits the payment from the session's metadata.
    """
    if not stripe_configured(settings):
        raise ServiceUnavailable(NOT_CONFIGURED, code="stripe_not_configured")
    client = client or stripe_client(settings)
    async with engine.connect() as conn:
        user = await get_user(conn, user_id)
    params = build_checkout_params(user.id, user.email, amount_usd_nanos, success_url, cancel_url)
    options: dict[str, Any] = {"idempotency_key": idempotency_key} if idempotency_key else {}
    try:
        session = (await asyncio.to_thread(client.v1.checkout.sessions.create, params, options)).to_dict()  # type: ignore[arg-type]
    except _stripe().StripeError as exc:
        log.warning("Stripe refused to create a Checkout Session: %s", exc.user_message or type(exc).__name__)
        raise UpstreamError("the payment provider could not start the checkout; try again", code="stripe_error") from None
    session_id = session.get("id")
    if not isinstance(session_id, str) or not session_id:
        raise UpstreamError("the payment provider answered without a session id", code="stripe_error")
    async with engine.begin() as conn:
        await conn.execute(
            _insert_ignore(conn, payments, ["checkout_session_id"]).values(
                user_id=user.id,
                checkout_session_id=session_id,
                payment_intent_id=None,
                amount_nanos=amount_usd_nanos,
                currency="usd",
                status="pending",
                refunded_nanos=0,
                revoked_nanos=0,
                created_at=utc_now(),
            )
        )
    return {"checkout_session_id": session_id, "url": session.get("url"), "amount_nanos": amount_usd_nanos, "user_id": user.id}


async def retrieve_checkout_session(settings: Settings, session_id: str, *, client: stripe.StripeClient | None = None) -> dict[str, Any]:
    """The current state of a Checkout Session from Stripe (for the success page: see ``fulfil_session``)."""
    client = client or stripe_client(settings)
    try:
        session = await asyncio.to_thread(client.v1.checkout.sessions.retrieve, session_id)
    except _stripe().StripeError:
        raise UpstreamError("the payment provider could not be reached; try again", code="stripe_error") from None
    return session.to_dict()


# --------------------------------------------------------------------------- webhook


def _fail(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_signature", param="Stripe-Signature")


def verify_event(payload: bytes, signature_header: str | None, secret: str | None, *, now: datetime | None = None) -> dict[str, Any]:
    """The event in ``payload`` if its signature is valid and recent; raises otherwise (never credits)."""
    if secret is None or not secret.strip():
        raise ServiceUnavailable("Stripe webhooks are disabled: " + NOT_CONFIGURED, code="stripe_not_configured")
    if isinstance(payload, str):
        payload = payload.encode()
    try:
        body = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("the webhook body is not UTF-8") from None
    try:
        # Signature (any v1 value matches; constant-time). The library checks the age against the
        # wall clock; with an injected clock we check the window below ourselves.
        _stripe().WebhookSignature.verify_header(body, signature_header, secret.strip(), None if now is not None else WEBHOOK_TOLERANCE)
    except _stripe().SignatureVerificationError:
        raise _fail("the Stripe signature does not verify: wrong secret, altered body, or too old") from None
    timestamp = _signature_timestamp(str(signature_header))
    clock = (now or utc_now()).timestamp()
    if abs(clock - timestamp) > WEBHOOK_TOLERANCE:
        raise _fail("the Stripe signature's timestamp is outside the 300-second tolerance")
    try:
        event = parse_json(body, what="the webhook body")
    except InvalidRequest as err:
        raise InvalidRequest(err.message, code="invalid_event") from None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not event["id"]
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
    ):
        raise InvalidRequest("the webhook body is not a Stripe event", code="invalid_event")
    return event


def _signature_timestamp(header: str) -> int:
    # The same parse the stripe library applies (the first ``t=``); it has already succeeded.
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key == "t":
            return int(value)
    raise _fail("the Stripe signature has no timestamp")


async def handle_webhook(
    conn: AsyncConnection, payload: bytes, signature_header: str | None, secret: str | None, now: datetime | None = None
) -> dict[str, Any]:
    """Verify and apply one Stripe webhook delivery; returns ``{"event_id", "type", "outcome", "amount_nanos"}``.

    Raises ``ServiceUnavailable`` (503) when the secret is unset and ``InvalidRequest`` (400) when
    the signature, its timestamp or the body is wrong — in both cases nothing is written. Every
    other outcome (including event types we ignore and repeated deliveries) should be answered
    with 200 after the caller commits.
    """
    event = verify_event(payload, signature_header, secret, now=now)
    now = _utc(now)
    event_id, event_type = event["id"][:255], event["type"][:100]
    inserted = await conn.execute(
        _insert_ignore(conn, stripe_events, ["event_id"])
        .values(event_id=event_id, type=event_type, outcome=None, received_at=now)
        .returning(stripe_events.c.event_id)
    )
    if inserted.first() is None:
        return {"event_id": event_id, "type": event_type, "outcome": "duplicate", "amount_nanos": 0}

    obj = event["data"]["object"]
    if event_type in PAID_EVENTS:
        outcome, amount = await fulfil_session(conn, obj, now=now)
    elif event_type == "charge.refunded":
        outcome, amount = await _revoke(conn, obj, event_type, now=now)
    elif event_type == "charge.dispute.created":
        outcome, amount = await _revoke(conn, obj, event_type, now=now)
    else:
        outcome, amount = "ignored", 0
    await conn.execute(update(stripe_events).where(stripe_events.c.event_id == event_id).values(outcome=outcome))
    return {"event_id": event_id, "type": event_type, "outcome": outcome, "amount_nanos": amount}


async def fulfil_session(conn: AsyncConnection, session: dict[str, Any], *, now: datetime | None = None) -> tuple[str, int]:
    """Credit a paid Checkout Session once; safe to call any number of times, concurrently.

    Returns ``(outcome, credited nanos)``: ``credited``, ``already_credited``, ``not_paid``,
    ``unmatched`` (no payment row and no usable metadata) or ``wrong_currency``.
    """
    now = _utc(now)
    session_id = session.get("id")
    if not isinstance(session_id, str) or not session_id:
        return "unmatched", 0
    if session.get("payment_status") != "paid":
        return "not_paid", 0  # async methods: credited by checkout.session.async_payment_succeeded
    if str(session.get("currency") or "usd").lower() != "usd":
        log.warning("Checkout Session %s was paid in %s, not USD: not credited", session_id, session.get("currency"))
        return "wrong_currency", 0
    total = session.get("amount_total")
    paid_nanos = total * NANOS_PER_CENT if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None
    if paid_nanos is not None and paid_nanos > MAX_TOPUP_NANOS:  # no checkout of ours asks that much (nor can a balance hold 10^15 cents)
        log.warning("Checkout Session %s reports amount_total %s cents, more than the largest top-up: not credited", session_id, total)
        raise InvalidRequest(
            f"the Checkout Session's amount_total is more than the largest top-up (${format_usd(MAX_TOPUP_NANOS)})", code="invalid_amount"
        )
    intent = _id_of(session.get("payment_intent"))

    for _ in range(2):
        values: dict[str, Any] = {"status": "paid", "paid_at": now}
        if paid_nanos is not None:
            values["amount_nanos"] = paid_nanos  # what was paid, as Stripe signed it
        if intent is not None:
            values["payment_intent_id"] = intent
        row = (
            await conn.execute(
                update(payments)
                .where(payments.c.checkout_session_id == session_id, payments.c.status == "pending")
                .values(**values)
                .returning(payments.c.id, payments.c.user_id, payments.c.amount_nanos)
            )
        ).first()
        if row is not None:
            await add_credits(conn, row.user_id, row.amount_nanos, kind="topup", note=f"Stripe payment {session_id}")
            return "credited", int(row.amount_nanos)
        if await conn.scalar(select(payments.c.id).where(payments.c.checkout_session_id == session_id)) is not None:
            return "already_credited", 0
        # No row: the session was created elsewhere (or our pending insert was lost). Its metadata
        # names the user; the amount is what Stripe says was paid.
        user_id = _metadata_user(session)
        if user_id is None or paid_nanos is None:
            log.warning("paid Checkout Session %s matches no payment and carries no TokenHub user: not credited", session_id)
            return "unmatched", 0
        try:
            user = await get_user(conn, user_id)
        except NotFound:
            log.warning("paid Checkout Session %s names user %s, who does not exist: not credited", session_id, user_id)
            return "unmatched", 0
        created = (
            await conn.execute(
                _insert_ignore(conn, payments, ["checkout_session_id"])
                .values(
                    user_id=user.id,
                    checkout_session_id=session_id,
                    payment_intent_id=intent,
                    amount_nanos=paid_nanos,
                    currency="usd",
                    status="paid",
                    refunded_nanos=0,
                    revoked_nanos=0,
                    created_at=now,
                    paid_at=now,
                )
                .returning(payments.c.id)
            )
        ).first()
        if created is not None:
            await add_credits(conn, user.id, paid_nanos, kind="topup", note=f"Stripe payment {session_id}")
            return "credited", paid_nanos
        # Someone inserted the row meanwhile (a concurrent create_checkout or delivery): try the
        # compare-and-swap again, which now sees it.
    return "already_credited", 0


async def _revoke(conn: AsyncConnection, obj: dict[str, Any], event_type: str, *, now: datetime) -> tuple[str, int]:
    """Apply a refund (``charge.refunded``) or a dispute (``charge.dispute.created``) once."""
    intent = _id_of(obj.get("payment_intent"))
    if intent is None:
        return "unmatched", 0
    query = select(payments).where(payments.c.payment_intent_id == intent)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    payment = (await conn.execute(query)).first()
    if payment is None:
        log.warning("%s for payment intent %s matches no TokenHub payment: ignored", event_type, intent)
        return "unmatched", 0
    if event_type == "charge.dispute.created":
        target, status, what = payment.amount_nanos, "disputed", "dispute"
    else:
        refunded = obj.get("amount_refunded")
        if not isinstance(refunded, int) or isinstance(refunded, bool) or refunded < 0:
            return "unmatched", 0
        target, status, what = min(refunded * NANOS_PER_CENT, payment.amount_nanos), "refunded", "refund"
    delta = target - payment.refunded_nanos
    if delta <= 0:
        return "already_applied", 0

    balance_query = select(users.c.balance).where(users.c.id == payment.user_id)
    if conn.dialect.name == "postgresql":
        balance_query = balance_query.with_for_update()
    balance = int(await conn.scalar(balance_query) or 0)
    revoke = min(delta, max(balance, 0))
    swapped = await conn.execute(
        update(payments)
        .where(payments.c.id == payment.id, payments.c.refunded_nanos == payment.refunded_nanos)
        .values(
            refunded_nanos=target,
            revoked_nanos=payments.c.revoked_nanos + revoke,
            # A dispute outranks a refund: once disputed, a payment stays disputed.
            status=case((payments.c.status == "disputed", "disputed"), else_=status),
        )
    )
    if swapped.rowcount != 1:  # cannot happen under the row lock / SQLite's write lock
        raise ServiceUnavailable("the payment changed concurrently; retry", code="conflict")
    if revoke:
        note = f"Stripe {what} of ${format_usd(delta)} on {payment.checkout_session_id}"
        if revoke < delta:
            note += f" (only ${format_usd(revoke)} unspent: balance clamped at zero)"
        await add_credits(conn, payment.user_id, -revoke, kind="refund", note=note)
    if revoke < delta:
        log.warning(
            "Stripe %s on %s: $%s could not be recovered (already spent)", what, payment.checkout_session_id, format_usd(delta - revoke)
        )
    return ("revoked" if revoke == delta else "revoked_clamped"), revoke


# --------------------------------------------------------------------------- queries


async def list_payments(conn: AsyncConnection, user_id: int | None = None, *, limit: int = 100) -> list[dict[str, Any]]:
    """Payments, newest first (one user's, or everyone's for operators)."""
    query = select(payments).order_by(payments.c.id.desc()).limit(min(max(limit, 1), 1000))
    if user_id is not None:
        query = query.where(payments.c.user_id == user_id)
    return [payment_dict(row) for row in await conn.execute(query)]


async def get_payment(conn: AsyncConnection, checkout_session_id: str, *, user_id: int | None = None) -> dict[str, Any]:
    query = select(payments).where(payments.c.checkout_session_id == checkout_session_id)
    if user_id is not None:
        query = query.where(payments.c.user_id == user_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("no such payment", code="payment_not_found")
    return payment_dict(row)


def payment_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_id": row.user_id,
        "checkout_session_id": row.checkout_session_id,
        "payment_intent_id": row.payment_intent_id,
        "amount_nanos": row.amount_nanos,
        "currency": row.currency,
        "status": row.status,
        "refunded_nanos": row.refunded_nanos,
        "revoked_nanos": row.revoked_nanos,
        "unrecovered_nanos": row.refunded_nanos - row.revoked_nanos,
        "created_at": as_utc(row.created_at),
        "paid_at": as_utc(row.paid_at),
    }


# --------------------------------------------------------------------------- helpers


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return utc_now()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(timezone.utc)


def _id_of(value: Any) -> str | None:
    """A Stripe reference, expanded (an object with ``id``) or not (the id)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value[:255] if isinstance(value, str) and value else None


def _metadata_user(session: dict[str, Any]) -> int | None:
    metadata = session.get("metadata") if isinstance(session.get("metadata"), dict) else {}
    for raw in (metadata.get("tokenhub_user_id"), session.get("client_reference_id")):
        user_id = whole_number(raw, 11)
        if user_id is not None:
            return user_id
    return None


def _insert_ignore(conn: AsyncConnection, table: Any, conflict: list[str]) -> Any:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING``: a duplicate is skipped, not an error.

    On PostgreSQL a concurrent insert of the same key waits for the other transaction and then
    skips (if it committed) — the unique constraint, not a process-local set, decides.
    """
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return dialect_insert(table).on_conflict_do_nothing(index_elements=conflict)


__all__ = [
    "NOT_CONFIGURED",
    "WEBHOOK_PATH",
    "build_checkout_params",
    "create_checkout",
    "fulfil_session",
    "get_payment",
    "handle_webhook",
    "list_payments",
    "retrieve_checkout_session",
    "stripe_configured",
    "verify_event",
]
