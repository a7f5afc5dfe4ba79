"""The schema, as SQLAlchemy Core tables. Alembic migrations create exactly this.

Money columns are BIGINT nano-dollars (see ``tokenhub.money``). Times are timezone-aware UTC.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for the ledger.
BigId = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255)),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    # Spendable balance: always the sum of the user's ledger entries (holds already deducted).
    Column("balance", BigInteger, nullable=False, default=0),
    Column("webhook_secret", String(64)),  # signs task callbacks; made on first use
    # Bumped when the password changes: console sessions signed with an older epoch stop working.
    Column("session_epoch", Integer, nullable=False, default=0, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("limit_nanos", BigInteger),  # the account's total spending limit, NULL = none
    # Limits (NULL = none): requests and tokens per minute, requests in flight, spend per UTC
    # day / ISO week / month (nanos). See tokenhub/limits.
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("concurrency", Integer),
    Column("daily_limit_nanos", BigInteger),
    Column("weekly_limit_nanos", BigInteger),
    Column("monthly_limit_nanos", BigInteger),
    # When the address was shown to be the user's (an emailed link, or a sign-in provider that vouches).
    Column("email_verified_at", DateTime(timezone=True)),
    # Two-factor sign-in (accounts/two_factor.py): the TOTP secret, encrypted with the gateway's secret;
    # set while being turned on, in force once ``totp_enabled_at`` is set.
    Column("totp_secret", String(255)),
    Column("totp_enabled_at", DateTime(timezone=True)),
    Column("totp_last_step", BigInteger),  # the last accepted code's time step: a code works once
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(32), nullable=False),
    Column("limit_nanos", BigInteger),  # total spending limit, NULL = none
    Column("used_nanos", BigInteger, nullable=False, default=0),  # charged so far
    Column("held_nanos", BigInteger, nullable=False, default=0),  # open holds
    Column("models", Text),  # comma-separated fnmatch patterns, NULL = every model
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Limits (NULL = none): requests and tokens per minute, requests in flight, spend per UTC
    # day / ISO week / month (nanos). See tokenhub/limits.
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("concurrency", Integer),
    Column("daily_limit_nanos", BigInteger),
    Column("weekly_limit_nanos", BigInteger),
    Column("monthly_limit_nanos", BigInteger),
)

# The ledger's two tables have no foreign keys (migration 0011): PostgreSQL checks one with a query per
# row written, a fifth of a ledger group's server time, spent while the group holds its account's row
# lock. Their rows are written by the ledger writer for the users and keys it has locked in the same
# transaction (a hold whose key or account is gone is refused) and by credits that update the user's
# row first; users and keys are never deleted; `tokenhub ledger check` reports any row whose user or
# key does not exist.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", Integer, nullable=False),  # users.id (no foreign key: see the note above the table)
    # hold | release | charge | adjustment | topup | refund | redeem
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),  # signed nanos
    Column("balance_after", BigInteger, nullable=False),
    Column("request_id", String(40)),  # the usage record this entry belongs to, if any
    Column("note", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_ledger_user_id_id", "user_id", "id"),
)

# One row per API request: created with the hold, completed at settlement.
requests = Table(
    "requests",
    metadata,
    Column("id", String(40), primary_key=True),  # gen-...: the request id clients see
    Column("user_id", Integer, nullable=False),  # users.id (no foreign key: see the note above ledger_entries)
    Column("key_id", Integer, nullable=False),  # api_keys.id, a key of that user
    Column("model", String(200), nullable=False),
    Column("channel_id", Integer),
    Column("upstream_model", String(200)),
    Column("endpoint", String(32), nullable=False, default="chat"),
    Column("stream", Boolean, nullable=False, default=False),
    Column("state", String(16), nullable=False),  # held -> settled | released
    Column("status", String(24)),  # ok | client_closed | upstream_error | truncated | interrupted
    Column("http_status", Integer),
    Column("hold_nanos", BigInteger, nullable=False),
    Column("cost_nanos", BigInteger, nullable=False, default=0),  # what was charged
    # What the usage cost beyond what the account could pay (balance, key or spend limit): not charged.
    Column("overage_nanos", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("cache_write_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("estimated", Boolean, nullable=False, default=False),
    Column("finish_reason", String(32)),
    Column("latency_ms", Integer),
    Column("ttfb_ms", Integer),
    Column("error", Text),
    Column("prices", Text),  # JSON: the prices (nanos per 1M) the cost was computed with
    Column("tool_uses", Text),  # JSON: server-tool uses charged, by kind ({"web_search": 2}); NULL: none
    Column("instance_id", String(40), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("settled_at", DateTime(timezone=True)),
    Index("ix_requests_user_created", "user_id", "created_at"),
    Index("ix_requests_key_created", "key_id", "created_at"),  # a key's spend per day/week/month
    # Only open holds are indexed (the sweeper's question); settled rows never touch this index.
    Index(
        "ix_requests_held",
        "instance_id",
        sqlite_where=text("state = 'held'"),
        postgresql_where=text("state = 'held'"),
    ),
)

# What each key and each account has spent in each UTC day (and each account in total): open holds at
# their amount, the rest at their cost, of the requests created that day. Every ledger group adds its
# requests' changes in the transaction that writes them (``GroupPlan.spend``), so a spend limit by period
# is checked against a few rows (a week's or a month's days), not a sum over the period's requests;
# `tokenhub ledger check` compares the current periods with those sums. Days no period reads any more
# (before the previous month) are pruned once a day (billing/sweeper.py).
spend_by_period = Table(
    "spend_by_period",
    metadata,
    Column("scope", String(8), primary_key=True),  # key | user
    Column("ident", Integer, primary_key=True),  # api_keys.id | users.id
    Column("period", String(8), primary_key=True),  # day | total (accounts only: a key's is api_keys.used_nanos)
    Column("start", String(10), primary_key=True),  # the day, ISO (total: 1970-01-01)
    Column("amount", BigInteger, nullable=False),
    Index("ix_spend_by_period_day", "period", "start"),  # the days the sweeper prunes (limits.policy.spend_kept_from)
    sqlite_with_rowid=False,
)

# Asynchronous media jobs (video). The hold is the ``requests`` row with the same id; the poller
# resolves it when the task ends, exactly once (see tasks/poller.py).
#
# Every process's poller looks each second for the open tasks and the callbacks that are due: two
# partial indexes hold only those rows, however many finished tasks the table keeps. A query reaches
# one only if it states the index's predicate itself, as written here: SQLite uses a partial index
# when the query's WHERE contains that term, and neither database can prove it from bound parameters
# (``status IN (?, ?)``, or a generic plan's ``$1``).
TASKS_OPEN: Final = "status IN ('queued', 'running')"
TASKS_CALLBACK_DUE: Final = "callback_state = 'pending'"
tasks = Table(
    "tasks",
    metadata,
    Column("id", String(40), primary_key=True),  # tsk-...: unguessable
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("key_id", Integer, ForeignKey("api_keys.id"), nullable=False),
    Column("model", String(200), nullable=False),
    Column("channel_id", Integer),
    Column("upstream_model", String(200), nullable=False),
    Column("upstream_task_id", String(200)),
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed | cancelled | expired
    Column("job", Text, nullable=False),  # JSON: the validated VideoJob
    Column("price_nanos", BigInteger, nullable=False),  # per second, for the job's mode and audio
    Column("hold_nanos", BigInteger, nullable=False),
    Column("cost_nanos", BigInteger, nullable=False, default=0),
    Column("duration_seconds", String(32)),  # as the upstream reported it (decimal text)
    Column("video_url", Text),
    Column("error", Text),  # JSON {"code", "message"}
    Column("callback_url", Text),
    Column("callback_state", String(16)),  # pending | delivered | failed
    Column("callback_attempts", Integer, nullable=False, default=0),
    Column("next_callback_at", DateTime(timezone=True)),
    Column("poll_attempts", Integer, nullable=False, default=0),
    Column("next_poll_at", DateTime(timezone=True)),
    Column("lease_owner", String(40)),
    Column("lease_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Index("ix_tasks_user_created", "user_id", "created_at"),
    Index("ix_tasks_open", "next_poll_at", sqlite_where=text(TASKS_OPEN), postgresql_where=text(TASKS_OPEN)),
    Index(
        "ix_tasks_callback_due",
        "next_callback_at",
        sqlite_where=text(TASKS_CALLBACK_DUE),
        postgresql_where=text(TASKS_CALLBACK_DUE),
    ),
)

channels = Table(
    "channels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("provider", String(40), nullable=False),
    Column("base_url", String(500), nullable=False),
    Column("api_key_enc", Text, nullable=False),  # sealed (tokenhub.secrets_box); never leaves the server
    Column("models", Text),  # JSON object {catalog id: upstream id}; NULL = the provider's catalog
    Column("priority", Integer, nullable=False, default=0),
    Column("weight", Integer, nullable=False, default=1),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Seconds, NULL = the gateway's default (TOKENHUB_CONNECT_TIMEOUT, _FIRST_BYTE_TIMEOUT, _IDLE_TIMEOUT).
    Column("connect_timeout", Float),
    Column("first_byte_timeout", Float),  # until the response headers
    Column("idle_timeout", Float),  # the longest gap between two chunks of the body
)

# Operator changes to the shipped catalog: overrides of a shipped model's fields (NULL = keep the
# shipped value) or whole models the operator added.
model_overrides = Table(
    "model_overrides",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("provider", String(40)),
    Column("upstream_id", String(200)),
    Column("name", String(200)),
    Column("kind", String(16)),
    Column("context_length", Integer),
    Column("max_output_tokens", Integer),
    Column("input_price", BigInteger),  # nanos per 1M tokens
    Column("cached_input_price", BigInteger),
    Column("output_price", BigInteger),
    Column("enabled", Boolean),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Small counters: `config_version` is bumped by every change to keys, users, channels or models,
# and every gateway process reloads its in-memory directory when it sees a new value.
meta = Table(
    "meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# Live gateway processes: a process whose heartbeat is stale is dead, and its holds are released.
instances = Table(
    "instances",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)

# Prepaid codes (billing/codes.py). Only the SHA-256 of a code is stored; the plaintext is shown
# once, when the batch is created. A code is redeemed by one conditional UPDATE (redeemed_by IS NULL).
redemption_codes = Table(
    "redemption_codes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("code_prefix", String(16), nullable=False),  # "THC-XXXX": enough to recognise, useless to redeem
    Column("amount_nanos", BigInteger, nullable=False),
    Column("batch_id", String(40), nullable=False, index=True),
    Column("label", String(200)),
    Column("created_by", Integer, ForeignKey("users.id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("redeemed_by", Integer, ForeignKey("users.id")),
    Column("redeemed_at", DateTime(timezone=True)),
    Column("disabled", Boolean, nullable=False, default=False),
)

# Stripe Checkout top-ups (billing/payments.py): one row per Checkout Session; credited once, by
# the pending -> paid compare-and-swap.
payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("checkout_session_id", String(255), nullable=False, unique=True),
    Column("payment_intent_id", String(255), unique=True),
    Column("amount_nanos", BigInteger, nullable=False),  # requested; on payment, what Stripe says was paid
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),  # pending | paid | refunded | disputed
    # Refunds and disputes: what Stripe took back (cumulative) and what we could revoke of it
    # (the balance is never taken below zero; the difference is unrecovered).
    Column("refunded_nanos", BigInteger, nullable=False, default=0),
    Column("revoked_nanos", BigInteger, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("paid_at", DateTime(timezone=True)),
)

# Every Stripe event applied, by id: the unique insert shares the transaction of its effect.
stripe_events = Table(
    "stripe_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("outcome", String(32)),  # credited | duplicate-effect | ignored | unmatched | ...
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# Signed-in console sessions (console/sessions.py): only the SHA-256 of the session id in the cookie.
# A cookie whose row is gone (logout) or expired signs nobody in, in every process sharing the database.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)


# Responses API answers kept for their account (``store``): the response object, this request's
# input items, and the whole conversation up to and including it (``context``: earlier items, input,
# output) so that ``previous_response_id`` is one read. JSON text. Kept 30 days.
stored_responses = Table(
    "stored_responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("model", String(200), nullable=False),
    Column("response", Text, nullable=False),
    Column("input_items", Text, nullable=False),
    Column("context", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)


# Single-use links (accounts/links.py): a password reset, an email verification or a sign-up invite.
# Only the SHA-256 of the token in the link is kept. ``user_id`` is the account (for an invite: the admin
# who made it); ``email`` is the address a verification is for; ``used_by`` the account an invite made.
account_links = Table(
    "account_links",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),  # reset | verify | invite
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True),
    Column("email", String(320)),
    Column("note", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("used_at", DateTime(timezone=True)),
    Column("used_by", Integer, ForeignKey("users.id", ondelete="SET NULL")),
)

# Accounts at sign-in providers (GitHub, OpenID Connect issuers) linked to a user: the provider's
# name and its stable subject id (``sub``; GitHub's numeric user id).
user_identities = Table(
    "user_identities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("provider", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("email", String(320)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("provider", "subject", name="uq_user_identities_provider_subject"),
)

# Two-factor recovery codes: each the SHA-256 of a code shown once; used once.
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False),
    Column("used_at", DateTime(timezone=True)),
)
