"""The early hold: a chat request whose hold this process expects admitted goes upstream while the hold
commits, and nothing reaches the client before the commit (relay/relay.py, billing/bill.py)."""

from __future__ import annotations

import threading
import time

import asyncpg
import openai
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, customer, priced_model
from tokenhub.billing.ledger import Hold, LedgerWriter, Settlement
from tokenhub.simulator.openai import FakeOpenAIState
from tokenhub.storage.tables import api_keys

MSG = [{"role": "user", "content": "hello"}]


def _seen(gw: Harness, client: openai.OpenAI) -> None:
    """One answered request: the gateway has seen the account's figures."""
    client.chat.completions.create(model=MODEL, messages=MSG)
    gw.flush()


async def _ids(conn: AsyncConnection) -> tuple[int, int]:
    """The customer's account and key (the only ones)."""
    return (await conn.execute(select(api_keys.c.user_id, api_keys.c.id))).one()


def _wait_for(condition, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.fixture
def postgres_gateway(make_gateway, database_url: str) -> Harness:
    if not database_url.startswith("postgresql"):
        pytest.skip("early holds are PostgreSQL's (a round-trip commit); SQLite's never go early")
    return make_gateway(database_url)


@pytest.mark.parametrize("stream", [False, True])
def test_the_call_goes_upstream_while_the_hold_waits_and_the_client_only_after_it(
    postgres_gateway: Harness, database_url: str, upstream_url: str, fake_openai: FakeOpenAIState, stream: bool
) -> None:
    gw = postgres_gateway
    priced_model(gw, upstream_url)
    c = customer(gw)
    client = gw.client(c.key)
    _seen(gw, client)
    user_id, _ = gw.read(_ids)
    seen_before = len(fake_openai.requests)
    # Another connection locks the account's row: the hold's commit waits for it.
    blocker = gw.run(asyncpg.connect(database_url))
    gw.run(blocker.execute("BEGIN"))
    gw.run(blocker.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id))
    answer: list[str] = []

    def call() -> None:
        if stream:
            answer.append("".join(ch.choices[0].delta.content or "" for ch in client.chat.completions.create(
                model=MODEL, messages=MSG, stream=True, stream_options={"include_usage": True}) if ch.choices))  # fmt: skip
        else:
            answer.append(client.chat.completions.create(model=MODEL, messages=MSG).choices[0].message.content or "")

    caller = threading.Thread(target=call)
    caller.start()
    try:
        _wait_for(lambda: len(fake_openai.requests) > seen_before, "the upstream call")  # it went upstream meanwhile
        time.sleep(0.2)  # the upstream has answered by now: the answer waits for the hold's commit
        assert answer == [] and caller.is_alive()
        assert gw.run(blocker.fetchval("SELECT count(*) FROM requests")) == 1  # only the first request's row
    finally:
        gw.run(blocker.execute("COMMIT"))
        gw.run(blocker.close())
    caller.join(10)
    assert answer and answer[0]
    row = gw.request_row()
    assert (row.state, row.status) == ("settled", "ok") and row.cost_nanos > 0
    assert gw.ledger_report().ok


@pytest.mark.parametrize("stream", [False, True])
def test_an_early_hold_refused_after_all_answers_402_and_charges_nothing(
    postgres_gateway: Harness, upstream_url: str, fake_openai: FakeOpenAIState, stream: bool
) -> None:
    gw = postgres_gateway
    priced_model(gw, upstream_url)
    c = customer(gw, credits_usd="10")
    client = gw.client(c.key)
    _seen(gw, client)
    before = gw.credits(c.email)["balance_nanos"]
    user_id, key_id = gw.read(_ids)

    async def spend_elsewhere() -> LedgerWriter:  # another process holds nearly everything meanwhile
        other = LedgerWriter(gw.gw.engine, "other-instance")
        other.start()
        await other.hold(Hold("gen-elsewhere", user_id, key_id, before - 1_000, MODEL))
        return other

    other = gw.run(spend_elsewhere())
    calls = len(fake_openai.requests)
    with pytest.raises(openai.APIStatusError) as refused:
        if stream:
            list(client.chat.completions.create(model=MODEL, messages=MSG, stream=True))
        else:
            client.chat.completions.create(model=MODEL, messages=MSG)
    assert refused.value.status_code == 402
    assert refused.value.body["code"] == "insufficient_credits"
    assert len(fake_openai.requests) == calls + 1  # it had gone upstream: this process's figures said it fit
    snapshot = gw.gw.health.snapshot(gw.gw.directory.routes(MODEL)[0].channel.id)
    assert snapshot["recent_errors"] == 0  # not the channel's fault

    async def settle_elsewhere() -> None:
        other.settle(Settlement("gen-elsewhere", user_id, key_id, before - 1_000, 0, "ok"))
        await other.close()

    gw.run(settle_elsewhere())
    assert gw.credits(c.email)["balance_nanos"] == before  # nothing charged
    assert gw.request_row().id == "gen-elsewhere"  # the refused request left no row
    assert gw.ledger_report().ok
