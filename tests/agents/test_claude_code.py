"""Claude Code (npm @anthropic-ai/claude-code) through the gateway: ``claude -p`` with ANTHROPIC_BASE_URL at it.

On a Claude model the requests pass through to the Anthropic fake; on a non-Claude model they are
translated for the OpenAI-protocol fake. Either way the answer comes back, every call Claude Code makes
is answered (a recording proxy sits between it and the gateway) and every request is billed exactly.
"""

from __future__ import annotations

import json

import pytest

from tests.agents.conftest import agent, assert_billed_exactly, run_agent
from tests.support.harness import Harness
from tests.support.scenarios import customer

MODELS = ["anthropic/claude-sonnet-4-6", "deepseek/deepseek-v4-pro"]


@pytest.fixture
def gateway_for_agents(gateway: Harness, anthropic_url: str, upstream_url: str):
    gateway.channel("anthropic", anthropic_url, name="claude")
    gateway.channel("deepseek", upstream_url, name="ds")
    return gateway, customer(gateway, credits_usd="20")


def claude(tmp_path, base: str, key: str, model: str, prompt: str, *extra: str):
    env = {
        "ANTHROPIC_BASE_URL": base, "ANTHROPIC_API_KEY": key, "CLAUDE_CONFIG_DIR": str(tmp_path / "cfg"),
        "ANTHROPIC_SMALL_FAST_MODEL": model, "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
    }  # fmt: skip
    command = [str(agent("claude")), "-p", prompt, "--output-format", "json", "--model", model, *extra]
    done = run_agent(command, tmp_path / "home", env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("model", MODELS)
def test_claude_code_answers_and_is_billed(gateway_for_agents, recorded, tmp_path, model):
    gw, cust = gateway_for_agents
    base, recorder = recorded
    result = claude(tmp_path, base, cust.key, model, "Say hello.")
    assert result["is_error"] is False and "fake reply" in result["result"], result
    assert not recorder.failures(), recorder.calls
    assert "POST /api/v1/messages" in recorder.paths(), recorder.calls
    assert_billed_exactly(gw, cust.email)


@pytest.mark.parametrize("model", MODELS)
def test_claude_code_tool_turn(gateway_for_agents, recorded, tmp_path, model):
    """The fake asks for a tool (``#fake:tools``: Claude Code's first tool, no input); Claude Code
    runs it, sends the tool_result back, and the turn goes on: at least two billed /messages calls."""
    gw, cust = gateway_for_agents
    base, recorder = recorded
    result = claude(tmp_path, base, cust.key, model, "Use a tool. #fake:tools", "--max-turns", "2")
    assert result["num_turns"] >= 2, result
    messages = [call for call in recorder.calls if call.path == "/api/v1/messages"]
    assert len(messages) >= 2 and not recorder.failures(), recorder.calls
    assert_billed_exactly(gw, cust.email)
