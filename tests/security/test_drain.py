"""SIGTERM with streams that would never end: the drain deadline bounds the process, and nothing is free.

`tokenhub serve` as a real process (one, or `--workers 2`), TOKENHUB_DRAIN_TIMEOUT=2, fake upstreams
that stream slowly for minutes or never answer. At the deadline every open stream ends with an error
event in its client's protocol and is charged for what it delivered (an estimate, status
``interrupted``); a request still waiting for the upstream's first byte is answered 503 and its hold
released; the process exits soon after; `tokenhub ledger check` is green and no hold is left open.
"""

from __future__ import annotations

import http.client
import json
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.support.processes import Served, clean_env, cli
from tests.support.servers import ServerThread

DRAIN = 2.0
EXIT_MARGIN = 12.0  # generous: the cut streams' endings, the last group commit, a busy machine
SLOW = "#fake:tokens=3000 #fake:delay=0.05"  # 150 s of stream at 20 tokens a second


@pytest.fixture
def env(tmp_path: Path, fake_openai_server: ServerThread, anthropic_url: str) -> dict[str, str]:
    env = clean_env(tmp_path / "home")
    env["TOKENHUB_DRAIN_TIMEOUT"] = str(DRAIN)
    for args in (
        ["user", "create", "dev@example.com"],
        ["credits", "add", "dev@example.com", "50"],
        ["channel", "add", "deepseek", "--api-key", "sk-upstream", "--base-url", f"{fake_openai_server.url}/v1"],
        ["channel", "add", "anthropic", "--api-key", "sk-upstream", "--base-url", anthropic_url],
    ):
        assert cli(args, env).returncode == 0, args
    env["TEST_KEY"] = cli(["key", "create", "dev@example.com"], env).stdout.strip()
    return env


class Calls:
    """The clients, each in a thread: an OpenAI stream, an Anthropic stream, a request the upstream never answers."""

    def __init__(self, served: Served, key: str, openai_streams: int = 1) -> None:
        self.served, self.key = served, key
        self.results: dict[str, dict[str, Any]] = {}
        self.streaming = threading.Barrier(openai_streams + 2)  # every stream has delivered text, and the test
        names = [f"openai{i}" for i in range(openai_streams)]
        self.threads = [threading.Thread(target=self._openai_stream, args=(name,)) for name in names]
        self.threads.append(threading.Thread(target=self._anthropic_stream))
        self.threads.append(threading.Thread(target=self._waiting))
        for thread in self.threads:
            thread.start()

    def _openai_stream(self, name: str) -> None:
        result = self.results.setdefault(name, {"text": ""})
        client = openai.OpenAI(base_url=self.served.base_url, api_key=self.key, max_retries=0, timeout=60)
        try:
            stream = client.chat.completions.create(
                model="deepseek/deepseek-v4-pro", stream=True, messages=[{"role": "user", "content": SLOW}]
            )
            for chunk in stream:
                for choice in chunk.choices:
                    result["text"] += choice.delta.content or ""
                if len(result["text"]) > 20 and not result.get("arrived"):
                    result["arrived"] = True
                    self.streaming.wait(30)
        except openai.APIError as exc:
            result["error"] = exc
        finally:
            client.close()

    def _anthropic_stream(self) -> None:
        result = self.results.setdefault("anthropic", {"text": ""})
        client = anthropic.Anthropic(base_url=self.served.base_url.removesuffix("/v1"), api_key=self.key, max_retries=0, timeout=60)
        try:
            with client.messages.stream(
                model="claude-sonnet-4-6", max_tokens=8000, messages=[{"role": "user", "content": SLOW}]
            ) as stream:
                for text in stream.text_stream:
                    result["text"] += text
                    if len(result["text"]) > 20 and not result.get("arrived"):
                        result["arrived"] = True
                        self.streaming.wait(30)
        except anthropic.APIError as exc:
            result["error"] = exc
        finally:
            client.close()

    def _waiting(self) -> None:
        result = self.results.setdefault("waiting", {})
        conn = http.client.HTTPConnection("127.0.0.1", self.served.port, timeout=60)
        body = {"model": "deepseek/deepseek-v4-pro", "messages": [{"role": "user", "content": "#fake:hang"}]}
        conn.request("POST", "/api/v1/chat/completions", json.dumps(body),
                     {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        result["status"], result["body"] = response.status, json.loads(response.read())
        conn.close()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive()


def wait_for_holds(db_path: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    with sqlite3.connect(db_path) as db:
        while db.execute("select count(*) from requests where state = 'held'").fetchone()[0] < count:
            assert time.monotonic() < deadline, "the requests did not start"
            time.sleep(0.05)
    db.close()


def sigterm_and_time_the_exit(served: Served) -> float:
    started = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    try:
        served.proc.wait(DRAIN + 60)
    finally:
        served.output()
    return time.monotonic() - started


def check_the_books(env: dict[str, str], calls: Calls, streams: int) -> None:
    for name, result in calls.results.items():
        if name == "waiting":
            continue
        assert result["text"], name  # text had been delivered ...
        err = result.get("error")  # ... and then the stream ended with an error event the SDK raises on
        assert err is not None, f"{name}: the stream ended without an error event"
        assert "shutting down" in str(err), str(err)
    waiting = calls.results["waiting"]
    assert waiting["status"] == 503 and waiting["body"]["error"]["code"] == "shutting_down"

    db = sqlite3.connect(Path(env["TOKENHUB_HOME"]) / "tokenhub.db")
    try:
        assert db.execute("select count(*) from requests where state = 'held'").fetchone()[0] == 0
        rows = db.execute("select stream, status, state, cost_nanos, estimated, completion_tokens from requests").fetchall()
        cut = [r for r in rows if r[0]]
        assert len(cut) == streams
        for _, status, state, cost, estimated, completion in cut:
            assert (status, state) == ("interrupted", "settled")
            assert cost > 0 and completion > 0 and estimated  # charged for what was delivered, flagged as an estimate
        [answered] = [r for r in rows if not r[0]]
        assert answered[1:4] == ("interrupted", "released", 0)  # answered 503, nothing charged
    finally:
        db.close()
    check = cli(["ledger", "check"], env)
    assert check.returncode == 0, check.stdout + check.stderr


def test_sigterm_cuts_open_streams_at_the_deadline_and_charges_what_was_delivered(env: dict[str, str]):
    served = Served(env)
    calls = Calls(served, env["TEST_KEY"])
    calls.streaming.wait(30)
    wait_for_holds(Path(env["TOKENHUB_HOME"]) / "tokenhub.db", 3)

    took = sigterm_and_time_the_exit(served)
    calls.join()

    assert served.proc.returncode == 0
    assert took < DRAIN + EXIT_MARGIN, f"the process took {took:.1f} s to exit after SIGTERM"
    assert took >= DRAIN - 0.5  # the streams had their drain time first
    check_the_books(env, calls, streams=2)


def test_sigterm_with_workers_is_bounded_by_the_same_deadline(env: dict[str, str]):
    served = Served(env, "--workers", "2")
    calls = Calls(served, env["TEST_KEY"], openai_streams=2)
    calls.streaming.wait(30)
    wait_for_holds(Path(env["TOKENHUB_HOME"]) / "tokenhub.db", 4)

    took = sigterm_and_time_the_exit(served)
    calls.join()

    assert served.proc.returncode == 0
    assert took < DRAIN + EXIT_MARGIN, f"the workers took {took:.1f} s to exit after SIGTERM"
    check_the_books(env, calls, streams=3)
