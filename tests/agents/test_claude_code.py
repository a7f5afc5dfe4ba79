"""Claude Code (npm @anthropic-ai/claude-code) through the gateway: ``claude -p`` with ANTHROPIC_BASE_URL at it.

On a Claude model the requests pass through to the Anthropic fake; on a non-Claude model they are
translated for the OpenAI-protocol fake. Either way the answer comes back and every call is billed.
"""

from __future__ import annotations

import json

import pytest

from tests.agents.conftest import agent, run_agent
from tests.support.harness import Harness
from tests.support.scenarios import customer


@pytest.fixture
def gateway_for_agents(gateway: Harness, anthropic_url: str, upstream_url: str):
    gateway.channel("anthropic", anthropic_url, name="claude")
    gateway.channel("deepseek", upstream_url, name="ds")
    return gateway, customer(gateway, credits_usd="20")


@pytest.mark.parametrize("model", ["anthropic/claude-sonnet-4-6", "deepseek/deepseek-v4-pro"])
def test_claude_code_answers_and_is_billed(gateway_for_agents, tmp_path, model):
    gw, cust = gateway_for_agents
    claude = agent("claude")
    done = run_agent(
        [str(claude), "-p", "Say hello.", "--output-format", "json", "--model", model],
        tmp_path / "home",
        {"ANTHROPIC_BASE_URL": gw.base_url.removesuffix("/v1"), "ANTHROPIC_API_KEY": cust.key,
         "ANTHROPIC_SMALL_FAST_MODEL": model, "ANTHROPIC_DEFAULT_HAIKU_MODEL": model, "CLAUDE_CONFIG_DIR": str(tmp_path / "cfg")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["is_error"] is False and "fake reply" in result["result"], result
    gw.flush()
    usage = gw.credits(cust.email)["total_usage_nanos"]
    assert usage > 0 and gw.ledger_report().ok
