"""Gemini CLI (npm @google/gemini-cli) through the gateway: GOOGLE_GEMINI_BASE_URL at /api, a TokenHub key as GEMINI_API_KEY."""

from __future__ import annotations

import json

import pytest

from tests.agents.conftest import agent, run_agent
from tests.support.harness import Harness
from tests.support.scenarios import customer


@pytest.fixture
def gateway_for_agents(gateway: Harness, gemini_url: str, upstream_url: str):
    gateway.channel("gemini", gemini_url, name="gm")
    gateway.channel("deepseek", upstream_url, name="ds")
    return gateway, customer(gateway, credits_usd="20")


@pytest.mark.parametrize("model", ["gemini-2.5-pro", "deepseek/deepseek-v4-pro"])
def test_gemini_cli_answers_and_is_billed(gateway_for_agents, tmp_path, model):
    gw, cust = gateway_for_agents
    gemini = agent("gemini")
    settings = tmp_path / "home" / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}},
                                    "privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False}}))  # fmt: skip
    done = run_agent(
        [str(gemini), "-m", model, "-p", "Say hello."],
        tmp_path / "home",
        {"GEMINI_API_KEY": cust.key, "GOOGLE_GEMINI_BASE_URL": gw.base_url.removesuffix("/v1"), "GEMINI_CLI_NO_RELAUNCH": "true", "GEMINI_CLI_TRUST_WORKSPACE": "true",
         "GEMINI_TELEMETRY_ENABLED": "false", "GEMINI_DEFAULT_AUTH_TYPE": "gemini-api-key"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "fake reply" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] > 0 and gw.ledger_report().ok
