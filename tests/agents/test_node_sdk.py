"""The official openai Node SDK (npm ``openai``) through the gateway: chat, streaming, Responses, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.agents.conftest import assert_billed_exactly, node_package, run_agent
from tests.support.harness import Harness
from tests.support.scenarios import customer

SCRIPT = Path(__file__).resolve().parents[1] / "clients" / "openai_node.mjs"


@pytest.mark.parametrize("model", ["openai/gpt-4.1", "anthropic/claude-sonnet-4-6"])
def test_openai_node_sdk(gateway: Harness, upstream_url: str, anthropic_url: str, tmp_path, model):
    node_package("openai")
    gateway.channel("openai", upstream_url, name="oa")
    gateway.channel("anthropic", anthropic_url, name="claude")
    cust = customer(gateway, credits_usd="5")
    done = run_agent(["node", str(SCRIPT)], tmp_path / "home",
                     {"TOKENHUB_BASE_URL": gateway.base_url, "TOKENHUB_API_KEY": cust.key, "MODEL": model})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["text"] == "Hello! This is a fake reply." and out["model"] == model and out["cost"] > 0
    assert len(out["streamed"].split()) == 5 and out["streamCost"] > 0
    assert out["responseText"] == "Hello! This is a fake reply." and out["responseCost"] > 0
    assert out["failed"] == {"status": 404, "name": "NotFoundError"}
    assert_billed_exactly(gateway, cust.email)
