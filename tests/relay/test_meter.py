"""The one meter's charge rules (relay/meter.py), fed by real stream readers where a stream is involved."""

from __future__ import annotations

import orjson

from tests.support.reading import ReadStream
from tokenhub.billing.cost import usage_cost
from tokenhub.catalog.model import Pricing
from tokenhub.providers.anthropic.adapter import AnthropicAdapter
from tokenhub.providers.openai.adapter import OpenAIAdapter
from tokenhub.relay.meter import StreamMeter, completion_charge
from tokenhub.sse import Event
from tokenhub.tokens import Usage, estimate_tokens

PRICING = Pricing(input=1_000_000_000, output=4_000_000_000, server_tools={"web_search": 10_000_000})


def openai_event(obj: object) -> Event:
    return Event(b"", orjson.dumps(obj))


def chunk(content: str | None = None, finish: str | None = None) -> dict:
    delta = {"content": content} if content is not None else {}
    return {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_the_upstreams_usage_is_charged_when_it_came() -> None:
    stream = ReadStream(OpenAIAdapter(), "m")
    for event in (chunk("Hello"), chunk(finish="stop"), {"id": "c1", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}):
        stream.feed(openai_event(event))
    usage, cost = stream.meter.charge(PRICING, lambda: 999, upstream_failed=False)
    assert usage == Usage(7, 3) and cost == usage_cost(Usage(7, 3), PRICING)
    assert stream.meter.finish_reason == "stop" and stream.meter.finished and stream.meter.done


def test_without_usage_the_estimate_of_the_prompt_and_the_text_delivered() -> None:
    stream = ReadStream(OpenAIAdapter(), "m")
    for text in ("Hello there, ", "how are you?"):
        stream.feed(openai_event(chunk(text)))
    usage, cost = stream.meter.charge(PRICING, lambda: 40, upstream_failed=True)  # cut after output began
    assert usage == Usage(40, estimate_tokens("Hello there, how are you?"), estimated=True)
    assert cost == usage_cost(usage, PRICING) > 0


def test_an_upstream_that_fails_before_any_output_costs_nothing() -> None:
    meter = StreamMeter()
    usage, cost = meter.charge(PRICING, lambda: 40, upstream_failed=True)
    assert usage.estimated and usage.completion_tokens == 0 and cost == 0
    usage, cost = meter.charge(PRICING, lambda: 40, upstream_failed=False)  # ended cleanly with nothing: the prompt
    assert cost == usage_cost(Usage(40, 0), PRICING) > 0


def test_server_tool_uses_delivered_are_charged_even_when_usage_never_comes() -> None:
    stream = ReadStream(AnthropicAdapter(), "m")
    start = {"type": "content_block_start", "index": 1, "content_block": {"type": "web_search_tool_result", "content": []}}
    failed = {"type": "content_block_start", "index": 2,
              "content_block": {"type": "web_search_tool_result", "content": {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}}}  # fmt: skip
    for obj in ({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}}, start, failed):
        stream.feed(Event(obj["type"].encode(), orjson.dumps(obj)))
    usage, cost = stream.meter.charge(PRICING, lambda: 40, upstream_failed=True)
    assert usage.tool_uses == {"web_search": 1} and usage.estimated  # the refused use is not billed
    assert cost == usage_cost(usage, PRICING) >= 10_000_000


def test_a_complete_answer_follows_the_same_rules() -> None:
    usage, cost = completion_charge(Usage(3, 4), PRICING, lambda: 999, lambda: "ignored")
    assert usage == Usage(3, 4) and cost == usage_cost(usage, PRICING)
    usage, cost = completion_charge(None, PRICING, lambda: 12, lambda: "twelve chars")
    assert usage == Usage(12, estimate_tokens("twelve chars"), estimated=True) and cost == usage_cost(usage, PRICING)
