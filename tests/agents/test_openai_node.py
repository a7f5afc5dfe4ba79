"""The openai Node SDK (npm ``openai``) through the gateway: chat.completions plain and streamed
(tests/clients/openai_chat.mjs), the answer and the exact ``usage.cost`` the ledger charged."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

from tests.agents.conftest import assert_billed_exactly, node_package, run_agent
from tests.support.harness import Harness
from tests.support.scenarios import MODEL, cost_nanos, customer, priced_model
from tokenhub.money import format_usd

SCRIPT = Path(__file__).resolve().parents[1] / "clients" / "openai_chat.mjs"


def test_node_sdk_chat_plain_and_streamed(gateway: Harness, upstream_url: str, tmp_path):
    priced_model(gateway, upstream_url)
    cust = customer(gateway)
    node_package("openai")  # skips locally, fails in CI, when not installed
    done: subprocess.CompletedProcess[str] = run_agent(
        ["node", str(SCRIPT), gateway.base_url, MODEL], tmp_path / "home", {"OPENAI_API_KEY": cust.key}, timeout=60
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout)
    expected = Decimal(format_usd(cost_nanos(8, 6)))  # as tests/api/test_chat.py: 8 prompt, 6 completion tokens
    for part in ("plain", "streamed"):
        assert result[part]["text"] == "Hello! This is a fake reply.", result
        assert Decimal(str(result[part]["usage"]["cost"])) == expected, result
    assert result["plain"]["model"] == MODEL
    assert assert_billed_exactly(gateway, cust.email) == 2 * cost_nanos(8, 6)
