"""Gemini CLI (npm @google/gemini-cli) through the gateway's Gemini API: ``gemini -p`` with
GOOGLE_GEMINI_BASE_URL at /api (the SDK inside adds /v1beta/models/...) and a th- key as GEMINI_API_KEY,
on a Gemini model (to the Gemini fake) and on a non-Gemini one (translated for the OpenAI fake)."""

from __future__ import annotations

import json

import pytest

from tests.agents.conftest import agent, assert_billed_exactly, run_agent
from tests.support.harness import Harness
from tests.support.scenarios import customer

# No telemetry, no usage statistics, no update checks; API-key auth (what GEMINI_API_KEY selects).
SETTINGS = {
    "telemetry": {"enabled": False},
    "privacy": {"usageStatisticsEnabled": False},
    "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
    "security": {"auth": {"selectedType": "gemini-api-key"}},
}


@pytest.fixture
def gateway_for_agents(gateway: Harness, upstream_url: str, gemini_url: str):
    gateway.channel("gemini", gemini_url, name="gm")
    gateway.channel("openai", upstream_url, name="oa")
    return gateway, customer(gateway, credits_usd="20")


@pytest.mark.parametrize("model", ["gemini-2.5-pro", "openai/gpt-4.1"])
def test_gemini_cli_answers_and_is_billed(gateway_for_agents, recorded, tmp_path, model):
    gw, cust = gateway_for_agents
    base, recorder = recorded
    home = tmp_path / "home"
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS))
    env = {"GEMINI_API_KEY": cust.key, "GOOGLE_GEMINI_BASE_URL": base, "GEMINI_TELEMETRY_ENABLED": "false",
           "GEMINI_CLI_TRUST_WORKSPACE": "true"}
    done = run_agent([str(agent("gemini")), "-p", "Say hello.", "-m", model, "--output-format", "json"], home, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert "fake" in result["response"].lower(), result
    assert not recorder.failures(), recorder.calls
    assert f"POST /api/v1beta/models/{model}:streamGenerateContent" in recorder.paths(), recorder.calls
    assert_billed_exactly(gw, cust.email)
