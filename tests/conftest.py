"""Shared fixtures: a fake OpenAI upstream, databases (SQLite and PostgreSQL), gateways."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.support.harness import Harness, create_pg_database, drop_pg_database, gateway_settings
from tests.support.servers import ServerThread
from tokenhub.simulator.anthropic import STATE_KEY as ANTHROPIC_STATE
from tokenhub.simulator.anthropic import FakeAnthropicState
from tokenhub.simulator.anthropic import create_app as create_fake_anthropic
from tokenhub.simulator.ark import create_app as create_fake_ark
from tokenhub.simulator.dashscope import create_app as create_fake_dashscope
from tokenhub.simulator.gemini import STATE_KEY as GEMINI_STATE
from tokenhub.simulator.gemini import FakeGeminiState
from tokenhub.simulator.gemini import create_app as create_fake_gemini
from tokenhub.simulator.kling import create_app as create_fake_kling
from tokenhub.simulator.openai import FakeOpenAIState
from tokenhub.simulator.openai import create_app as create_fake_openai

UPSTREAM_KEY = "sk-upstream"


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[ServerThread]:
    server = ServerThread(create_fake_openai(api_keys={UPSTREAM_KEY})).start()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(fake_openai_server: ServerThread) -> FakeOpenAIState:
    state: FakeOpenAIState = fake_openai_server.app["state"]
    state.reset()
    state.token_delay = 0.0  # as the server was made: a test's slow streams end with it
    return state


@pytest.fixture
def upstream_url(fake_openai_server: ServerThread, fake_openai: FakeOpenAIState) -> str:
    return f"{fake_openai_server.url}/v1"


@pytest.fixture(scope="session")
def fake_anthropic_server() -> Iterator[ServerThread]:
    server = ServerThread(create_fake_anthropic(api_keys={UPSTREAM_KEY})).start()
    yield server
    server.stop()


@pytest.fixture
def anthropic_url(fake_anthropic_server: ServerThread) -> str:
    """Base URL of the fake Anthropic API (its state reset for the test)."""
    fake_anthropic_server.app[ANTHROPIC_STATE].reset()
    return fake_anthropic_server.url


@pytest.fixture
def fake_anthropic(fake_anthropic_server: ServerThread, anthropic_url: str) -> FakeAnthropicState:
    return fake_anthropic_server.app[ANTHROPIC_STATE]


@pytest.fixture(scope="session")
def fake_gemini_server() -> Iterator[ServerThread]:
    server = ServerThread(create_fake_gemini(api_keys={UPSTREAM_KEY})).start()
    yield server
    server.stop()


@pytest.fixture
def gemini_url(fake_gemini_server: ServerThread) -> str:
    """Base URL of the fake Gemini API (its state reset for the test)."""
    fake_gemini_server.app[GEMINI_STATE].reset()
    return fake_gemini_server.url


@pytest.fixture
def fake_gemini(fake_gemini_server: ServerThread, gemini_url: str) -> FakeGeminiState:
    return fake_gemini_server.app[GEMINI_STATE]


KLING_AK, KLING_SK = "ak-test-0001", "sk-test-secret-that-is-long-enough-0001"


@pytest.fixture(scope="session")
def media_servers() -> Iterator[dict[str, ServerThread]]:
    """Fake Ark, Kling and DashScope, one each for the session."""
    servers = {
        "ark": ServerThread(create_fake_ark(api_keys={UPSTREAM_KEY})).start(),
        "kling": ServerThread(create_fake_kling(credentials={KLING_AK: KLING_SK})).start(),
        "dashscope": ServerThread(create_fake_dashscope(api_keys={UPSTREAM_KEY})).start(),
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each billing-relevant test runs on both databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tokenhub.db'}"
        return
    try:
        name = create_pg_database()
    except OSError as exc:
        if os.environ.get("CI"):
            raise  # CI starts PostgreSQL: never skip there
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc}); .ci/run starts it")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tokenhub.db'}"


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    started: list[Harness] = []

    def make(database_url: str, **overrides: object) -> Harness:
        harness = Harness(gateway_settings(tmp_path / f"home{len(started)}", database_url, **overrides))
        started.append(harness)
        return harness

    yield make
    for harness in reversed(started):
        harness.stop()


@pytest.fixture
def gateway(make_gateway: Callable[..., Harness], sqlite_url: str) -> Harness:
    """A gateway on SQLite (for tests about the API rather than storage)."""
    return make_gateway(sqlite_url)


@pytest.fixture
def claude_customer(gateway: Harness, anthropic_url: str, upstream_url: str) -> Iterator[tuple[Harness, Any, Any]]:
    """A gateway with an Anthropic channel and an OpenAI-protocol one, a customer with $20 and an
    anthropic SDK client on the customer's key."""
    import anthropic

    from tests.support.scenarios import customer

    gateway.channel("anthropic", anthropic_url, name="claude")
    gateway.channel("deepseek", upstream_url, name="ds")
    cust = customer(gateway, credits_usd="20")
    client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=cust.key, max_retries=0)
    yield gateway, cust, client
    client.close()
