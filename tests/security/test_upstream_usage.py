"""An upstream's malformed usage (a negative, float or string count, or one no request could reach) is
never charged as 0 nor as reported: the request
is charged the gateway's estimate and recorded ``estimated``, as for missing usage — through all three
protocol adapters, streamed and not, and the Anthropic pass-through."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, customer, priced_model

KINDS = ["negative", "float", "string", "huge"]  # huge: more tokens than any request holds (or a column can)
# model -> its prices in USD per 1M tokens (input, output)
MODELS = {MODEL: (3, 15), "anthropic/claude-sonnet-4-6": (3, 15), "google/gemini-2.5-pro": (Decimal("1.25"), 10)}


@pytest.fixture
def env(gateway: Harness, upstream_url: str, anthropic_url: str, gemini_url: str):
    priced_model(gateway, upstream_url)  # test/priced on the fake OpenAI upstream
    gateway.channel("anthropic", anthropic_url, name="claude")
    gateway.channel("gemini", gemini_url, name="gm")
    cust = customer(gateway, credits_usd="20")
    return gateway, cust


def estimate(text: str) -> int:
    """The gateway's estimate: about 4 ASCII characters per token (rounded up)."""
    return -(-len(text) // 4)


def expected_nanos(model: str, prompt_text: str, reply_text: str) -> int:
    prompt, completion = 8 + estimate(prompt_text), estimate(reply_text)  # 8 per message
    input_usd, output_usd = MODELS[model]
    exact = prompt * int(Decimal(input_usd) * 10**9) + completion * int(Decimal(output_usd) * 10**9)
    return (exact + 500_000) // 1_000_000



@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", list(MODELS))
def test_malformed_usage_is_charged_the_estimate(env, model: str, stream: bool, kind: str):
    gw, cust = env
    client = gw.client(cust.key)
    prompt = f"hello #fake:tokens=8 #fake:bad_usage={kind}"
    messages = [{"role": "user", "content": prompt}]
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=messages, stream=True,
                                                     stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        usage = chunks[-1].usage
    else:
        reply = client.chat.completions.create(model=model, messages=messages)
        text, usage = reply.choices[0].message.content, reply.usage
    assert text
    expected = expected_nanos(model, prompt, text)
    assert usage.model_extra["estimated"] is True
    assert usage.completion_tokens == estimate(text)
    assert Decimal(str(usage.model_extra["cost"])) * 10**9 == expected
    row = gw.request_row()
    assert row.estimated and row.cost_nanos == expected and row.completion_tokens == estimate(text)
    assert gw.ledger_report().ok


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_malformed_usage_through_the_anthropic_pass_through(env, stream: bool, kind: str):
    gw, cust = env
    client = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=cust.key, max_retries=0)
    prompt = f"hello #fake:tokens=8 #fake:bad_usage={kind}"
    kwargs = {"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        with client.messages.stream(**kwargs) as events:
            text = "".join(events.text_stream)
    else:
        message = client.messages.create(**kwargs)
        text = message.content[0].text
        assert message.usage.output_tokens == estimate(text)  # the charged figure, not the upstream's garbage
    client.close()
    row = gw.request_row()
    assert row.estimated and row.cost_nanos == expected_nanos("anthropic/claude-sonnet-4-6", prompt, text)
