"""Codex CLI (npm @openai/codex) through the gateway: ``codex exec`` with a model provider at /api/v1, Responses wire API."""

from __future__ import annotations

import pytest

from tests.agents.conftest import agent, assert_billed_exactly, run_agent
from tests.support.harness import Harness
from tests.support.scenarios import customer


@pytest.fixture
def gateway_for_agents(gateway: Harness, anthropic_url: str, upstream_url: str):
    gateway.channel("openai", upstream_url, name="oa")
    gateway.channel("anthropic", anthropic_url, name="claude")
    return gateway, customer(gateway, credits_usd="20")


def codex_home(tmp_path, base_url: str, model: str):
    home = tmp_path / "codex"
    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "tokenhub"\n'
        'approval_policy = "never"\n'
        'sandbox_mode = "read-only"\n'
        "[model_providers.tokenhub]\n"
        'name = "TokenHub"\n'
        f'base_url = "{base_url}"\n'
        'env_key = "TOKENHUB_API_KEY"\n'
        'wire_api = "responses"\n'
    )
    return home


@pytest.mark.parametrize("model", ["openai/gpt-4.1", "anthropic/claude-sonnet-4-6"])
def test_codex_exec_answers_and_is_billed(gateway_for_agents, recorded, tmp_path, model):
    gw, cust = gateway_for_agents
    codex = agent("codex")
    base, recorder = recorded
    home = codex_home(tmp_path, f"{base}/v1", model)
    done = run_agent(
        [str(codex), "exec", "--skip-git-repo-check", "Say hello."],
        tmp_path / "home",
        {"CODEX_HOME": str(home), "TOKENHUB_API_KEY": cust.key},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "fake reply" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert "POST /api/v1/responses" in recorder.paths() and not recorder.failures(), recorder.calls
    assert_billed_exactly(gw, cust.email)
