"""The early hold: a chat request whose hold this process expects admitted goes upstream while the hold
commits, and nothing reaches the client before the commit (relay/relay.py, billing/bill.py)."""

from __future__ import annotations

import http.client
import json
import sqlite3
import threading
import time
from urllib.parse import urlsplit

import asyncpg
import openai
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.harness import Harness
from tests.support.processes import free_port
from tests.support.scenarios import MODEL, Customer, customer, priced_model
from tokenhub.billing.ledger import Hold, LedgerWriter, Settlement
from tokenhub.simulator.openai import FakeOpenAIState
from tokenhub.storage.tables import api_keys

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def seen(make_gateway, database_url: str, upstream_url: str) -> tuple[Harness, Customer, openai.OpenAI]:
    """A gateway on either database, a customer with $10, and one answered request: the gateway has
    seen the account's figures (``LedgerWriter.covers``)."""
    gw: Harness = make_gateway(database_url)
    priced_model(gw, upstream_url)
    c = customer(gw, credits_usd="10")
    client = gw.client(c.key)
    _seen(gw, client)
    return gw, c, client


def _seen(gw: Harness, client: openai.OpenAI) -> None:
    """One answered request: the gateway has seen the account's figures."""
    client.chat.completions.create(model=MODEL, messages=MSG)
    gw.flush()


def _refused(client: openai.OpenAI, messages: list[dict[str, str]], stream: bool) -> openai.APIStatusError:
    """The error a chat request (streamed or not) was answered with."""
    with pytest.raises(openai.APIStatusError) as refused:
        if stream:
            list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
        else:
            client.chat.completions.create(model=MODEL, messages=messages)
    return refused.value


async def _ids(conn: AsyncConnection) -> tuple[int, int]:
    """The customer's account and key (the only ones)."""
    return (await conn.execute(select(api_keys.c.user_id, api_keys.c.id))).one()


class _Blocker:
    """Another connection holding the account: on PostgreSQL its row's lock, on SQLite the write lock."""

    def __init__(self, gw: Harness, database_url: str, user_id: int) -> None:
        self._gw = gw
        self._pg: asyncpg.Connection | None = None
        self._lite: sqlite3.Connection | None = None
        if database_url.startswith("postgresql"):
            self._pg = gw.run(asyncpg.connect(database_url))
            gw.run(self._pg.execute("BEGIN"))
            gw.run(self._pg.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id))
        else:
            self._lite = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
            self._lite.execute("BEGIN IMMEDIATE")

    def request_rows(self) -> int:
        if self._pg is not None:
            return self._gw.run(self._pg.fetchval("SELECT count(*) FROM requests"))
        assert self._lite is not None
        return self._lite.execute("SELECT count(*) FROM requests").fetchone()[0]

    def release(self) -> None:
        if self._pg is not None:
            self._gw.run(self._pg.execute("COMMIT"))
            self._gw.run(self._pg.close())
        elif self._lite is not None:
            self._lite.execute("COMMIT")
            self._lite.close()


class _Elsewhere:
    """Another process holding nearly all of a customer's balance (its own ledger writer), until ``settle()``."""

    def __init__(self, gw: Harness, email: str) -> None:
        self._gw = gw
        self.before = gw.credits(email)["balance_nanos"]
        self.user_id, self.key_id = gw.read(_ids)
        self._writer = LedgerWriter(gw.gw.engine, "other-instance")
        self._amount = self.before - 1_000

        async def hold() -> None:
            self._writer.start()
            await self._writer.hold(Hold("gen-elsewhere", self.user_id, self.key_id, self._amount, MODEL))

        gw.run(hold())

    def settle(self) -> None:
        async def settle() -> None:
            self._writer.settle(Settlement("gen-elsewhere", self.user_id, self.key_id, self._amount, 0, "ok"))
            await self._writer.close()

        self._gw.run(settle())


def _wait_for(condition, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.mark.parametrize("stream", [False, True])
def test_the_call_goes_upstream_while_the_hold_waits_and_the_client_only_after_it(
    seen: tuple[Harness, Customer, openai.OpenAI], database_url: str, fake_openai: FakeOpenAIState, stream: bool
) -> None:
    gw, c, client = seen
    user_id, _ = gw.read(_ids)
    seen_before = len(fake_openai.requests)
    blocker = _Blocker(gw, database_url, user_id)  # the hold's commit waits for it
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
        assert blocker.request_rows() == 1  # its hold is not written yet: only the first request's row
    finally:
        blocker.release()
    caller.join(10)
    assert answer and answer[0]
    row = gw.request_row()
    assert (row.state, row.status) == ("settled", "ok") and row.cost_nanos > 0
    assert gw.ledger_report().ok


def test_a_client_that_leaves_while_its_stream_waits_for_the_hold_is_charged_nothing(
    seen: tuple[Harness, Customer, openai.OpenAI], database_url: str, fake_openai: FakeOpenAIState
) -> None:
    """The upstream's whole answer is in, its hold not committed yet: the client leaves. Nothing reached
    it, so nothing is charged (the answer's bytes wait for the hold, headers included)."""
    gw, c, _ = seen
    user_id, _ = gw.read(_ids)
    before = gw.credits(c.email)["balance_nanos"]
    seen_before = len(fake_openai.requests)
    blocker = _Blocker(gw, database_url, user_id)  # the hold's commit waits for it
    url = urlsplit(gw.base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        body = {"model": MODEL, "messages": MSG, "stream": True}
        conn.request("POST", "/api/v1/chat/completions", json.dumps(body), {"Authorization": f"Bearer {c.key}", "Content-Type": "application/json"})
        _wait_for(lambda: len(fake_openai.requests) > seen_before, "the upstream call")
        time.sleep(0.2)  # the upstream has answered by now: the answer waits for the hold's commit
        conn.sock.settimeout(0.05)
        with pytest.raises(TimeoutError):
            conn.sock.recv(1)  # not a byte yet, not even the headers
        conn.close()  # the client leaves
        time.sleep(0.6)  # the gateway notices (relay/inflight.py: POLL)
    finally:
        blocker.release()
    _wait_for(lambda: gw.request_row().state != "held", "the request to settle")
    row = gw.request_row()
    assert (row.state, row.status, row.cost_nanos) == ("released", "client_closed", 0)
    assert gw.credits(c.email)["balance_nanos"] == before
    assert gw.ledger_report().ok


@pytest.mark.parametrize("stream", [False, True])
def test_an_early_hold_refused_after_all_answers_402_and_charges_nothing(
    seen: tuple[Harness, Customer, openai.OpenAI], database_url: str, fake_openai: FakeOpenAIState, stream: bool
) -> None:
    gw, c, client = seen
    other = _Elsewhere(gw, c.email)  # another process holds nearly everything meanwhile
    calls = len(fake_openai.requests)
    # The hold's commit (and so its refusal) waits until the call has gone upstream: on SQLite a commit
    # can otherwise be done before the request is written, and the race is not what this test is about.
    blocker = _Blocker(gw, database_url, other.user_id)
    answers: list[openai.APIStatusError] = []
    caller = threading.Thread(target=lambda: answers.append(_refused(client, MSG, stream)))
    caller.start()
    try:
        _wait_for(lambda: len(fake_openai.requests) == calls + 1, "the upstream call")  # this process's figures said it fit
    finally:
        blocker.release()
    caller.join(10)
    assert answers, "the request was not refused"
    refused = answers[0]
    assert refused.status_code == 402
    assert refused.body["code"] == "insufficient_credits"
    snapshot = gw.gw.health.snapshot(gw.gw.directory.routes(MODEL)[0].channel.id)
    assert snapshot["recent_errors"] == 0  # not the channel's fault
    other.settle()
    assert gw.credits(c.email)["balance_nanos"] == other.before  # nothing charged
    assert gw.request_row().id == "gen-elsewhere"  # the refused request left no row
    assert gw.ledger_report().ok


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("failure", ["an error answer", "a refused connection"])
def test_an_upstream_that_fails_before_the_hold_commits_is_answered_once_it_has(
    seen: tuple[Harness, Customer, openai.OpenAI], database_url: str, failure: str, stream: bool
) -> None:
    """The upstream fails while the hold's commit waits: the relay waits for the commit (a refusal would be
    the answer instead), answers the upstream's error, and the hold is released, nothing charged. In a
    compiled wheel this wait once ran inside an exception handler and raised a freed exception later (a
    crash): tests/test_compiled.py keeps awaits out of compiled handlers."""
    gw, c, client = seen
    user_id, _ = gw.read(_ids)
    before = gw.credits(c.email)["balance_nanos"]
    if failure == "a refused connection":
        gw.channel("openai-compatible", f"http://127.0.0.1:{free_port()}/v1", models=[MODEL], name="down")  # nothing listens there
        options: dict = {"messages": MSG, "extra_body": {"provider": {"only": ["down"]}}}
    else:
        options = {"messages": [{"role": "user", "content": "hello #fake:status=500"}]}
    blocker = _Blocker(gw, database_url, user_id)  # the hold's commit waits for it
    answers: list[openai.APIStatusError] = []

    def call() -> None:
        with pytest.raises(openai.APIStatusError) as refused:
            if stream:
                list(client.chat.completions.create(model=MODEL, stream=True, **options))
            else:
                client.chat.completions.create(model=MODEL, **options)
        answers.append(refused.value)

    caller = threading.Thread(target=call)
    caller.start()
    try:
        time.sleep(0.3)  # the upstream has failed by now: the answer waits for the hold's commit
        assert answers == [] and caller.is_alive()
    finally:
        blocker.release()
    caller.join(10)
    code = "upstream_unreachable" if failure == "a refused connection" else "upstream_error"
    assert answers and answers[0].status_code == 502 and answers[0].body["code"] == code
    row = gw.request_row()
    assert (row.state, row.status, row.cost_nanos) == ("released", "error", 0)  # released: nothing charged
    assert gw.credits(c.email)["balance_nanos"] == before
    for _ in range(3):  # and the process goes on serving
        assert client.chat.completions.create(model=MODEL, messages=MSG).choices[0].message.content
    assert gw.ledger_report().ok


@pytest.mark.parametrize("stream", [False, True])
def test_a_hold_refused_while_the_upstream_answers_stops_the_call(
    seen: tuple[Harness, Customer, openai.OpenAI], fake_openai: FakeOpenAIState, stream: bool
) -> None:
    """A whole answer (or a stream's first event) is not waited for once the hold is refused: the
    upstream call is cancelled, and the client has its 402 at once."""
    gw, c, client = seen
    other = _Elsewhere(gw, c.email)  # another process holds nearly everything meanwhile
    slow = [{"role": "user", "content": "hello #fake:slow_first=3"}]  # the upstream answers after 3 s
    started = time.monotonic()
    refused = _refused(client, slow, stream)
    assert refused.status_code == 402 and refused.body["code"] == "insufficient_credits"
    assert time.monotonic() - started < 2.0  # not after the upstream's answer
    _wait_for(lambda: fake_openai.cancelled_requests == 1, "the upstream call to be cancelled")
    other.settle()
    assert gw.credits(c.email)["balance_nanos"] == other.before
    assert gw.ledger_report().ok


def test_on_sqlite_a_request_among_others_waits_for_its_hold(gateway: Harness, sqlite_url: str, upstream_url: str,
                                                             fake_openai: FakeOpenAIState) -> None:
    """A SQLite commit is the process's own work: a hold goes early only for a request alone in the
    process; among others it waits, to share their commit."""
    priced_model(gateway, upstream_url)
    c = customer(gateway)
    client = gateway.client(c.key)
    _seen(gateway, client)
    user_id, _ = gateway.read(_ids)
    fake_openai.token_delay = 0.1  # a stream that stays in flight
    slow = threading.Thread(target=lambda: list(client.chat.completions.create(model=MODEL, messages=MSG, stream=True)))
    slow.start()
    _wait_for(lambda: fake_openai.active_streams > 0, "the first stream")
    seen_before = len(fake_openai.requests)
    blocker = _Blocker(gateway, sqlite_url, user_id)
    answer: list[str] = []
    second = threading.Thread(target=lambda: answer.append(client.chat.completions.create(model=MODEL, messages=MSG).id))
    second.start()
    try:
        time.sleep(0.3)
        assert len(fake_openai.requests) == seen_before  # its hold waits before it goes upstream
    finally:
        blocker.release()
    second.join(10)
    slow.join(30)
    assert answer and len(fake_openai.requests) == seen_before + 1
    assert gateway.ledger_report().ok
