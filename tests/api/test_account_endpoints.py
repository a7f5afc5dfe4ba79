"""GET /models, /credits, /key and /generation, shaped like OpenRouter's."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal

import openai
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, cost_nanos, customer, priced_model
from tokenhub.catalog import service as catalog_service
from tokenhub.money import format_usd, usd_to_nanos


def get(gw: Harness, path: str, key: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"{gw.base_url}{path}")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read(), parse_float=Decimal)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_models_list_needs_no_key_and_carries_prices(gateway: Harness):
    status, body = get(gateway, "/models")
    assert status == 200 and body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    for required in ("openai/gpt-4.1", "openai/gpt-5.4", "anthropic/claude-sonnet-4-6", "google/gemini-2.5-pro",
                     "bytedance/doubao-seedance-2.0", "bytedance/doubao-seedream-5.0"):
        assert required in by_id
    gpt = by_id["openai/gpt-4.1"]
    assert gpt["object"] == "model" and gpt["owned_by"] == "openai" and isinstance(gpt["created"], int)
    assert gpt["context_length"] > 0 and "text" in gpt["architecture"]["input_modalities"]
    per_m = gpt["pricing_per_million_tokens"]
    assert Decimal(gpt["pricing"]["prompt"]) * 1_000_000 == Decimal(per_m["input"])
    assert Decimal(gpt["pricing"]["completion"]) * 1_000_000 == Decimal(per_m["output"])
    video = [m for m in body["data"] if m["type"] == "video"]
    assert video and all(m["pricing"]["video_per_second"] for m in video)
    assert any(m["pricing"].get("image") or m["pricing"].get("image_by_size") for m in body["data"] if m["type"] == "image")


def test_models_list_follows_price_changes_and_disabling(gateway: Harness):
    gateway.write(lambda c: catalog_service.set_model(c, "openai/gpt-4.1", input_price=usd_to_nanos("1.25")))
    _, body = get(gateway, "/models")
    gpt = next(m for m in body["data"] if m["id"] == "openai/gpt-4.1")
    assert gpt["pricing_per_million_tokens"]["input"] == "1.25"
    assert gpt["pricing"]["prompt"] == "0.00000125"
    gateway.write(lambda c: catalog_service.set_model(c, "openai/gpt-4.1", enabled=False))
    _, body = get(gateway, "/models")
    assert "openai/gpt-4.1" not in {m["id"] for m in body["data"]}


def test_one_model_by_an_id_with_a_slash_through_the_openai_sdk(gateway: Harness):
    client = openai.OpenAI(base_url=gateway.base_url, api_key="th-not-needed", max_retries=0)
    model = client.models.retrieve("openai/gpt-4.1")
    assert model.id == "openai/gpt-4.1" and model.object == "model" and model.owned_by == "openai"
    _, listed = get(gateway, "/models")
    entry = next(m for m in listed["data"] if m["id"] == "openai/gpt-4.1")
    assert get(gateway, "/models/openai/gpt-4.1") == (200, entry)  # the same object the list shows
    assert get(gateway, "/models/openai%2Fgpt-4.1") == (200, entry)  # a client that escapes the slash too
    with pytest.raises(openai.NotFoundError) as exc:
        client.models.retrieve("openai/gpt-nonexistent")
    assert exc.value.body["code"] == "model_not_found"
    gateway.write(lambda c: catalog_service.set_model(c, "openai/gpt-4.1", enabled=False))
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("openai/gpt-4.1")
    client.close()


def test_family_counts_match_the_product_catalog(gateway: Harness):
    _, body = get(gateway, "/models")
    counts: dict[str, int] = {}
    legacy = {"openai/gpt-3.5-turbo-instruct", "openai/gpt-5-pro"}  # served by the legacy /completions, or by Responses only
    generative = [m for m in body["data"] if m["type"] != "embedding" and m["id"] not in legacy]  # the document's chat and media models
    for m in generative:
        counts[m["family"]] = counts.get(m["family"], 0) + 1
    families = {f.id: f.name for f in gateway.gw.directory.catalog.families}
    by_name = {families[fid]: n for fid, n in counts.items()}
    assert sum(by_name.values()) == len(generative)
    assert len(body["data"]) - len(generative) == 6  # four embedding models, a legacy and a Responses-only one beside them
    assert len(families) == 15
    assert sorted(by_name.values()) == sorted([6, 6, 5, 3, 3, 3, 2, 2, 3, 3, 6, 2, 3, 2, 2])


def test_credits_key_and_generation(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway, credits_usd="5", name="ci", limit_nanos=usd_to_nanos("2"), models="test/*",
                    limits={"rpm": "100", "daily_limit": "1.5"})
    raw = gateway.client(cust.key).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}]
    )
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]
    gateway.flush()
    cost = cost_nanos(completion.usage.prompt_tokens, completion.usage.completion_tokens)

    status, credits = get(gateway, "/credits", cust.key)
    assert status == 200
    assert credits["data"]["total_credits"] == Decimal("5")
    assert credits["data"]["total_usage"] == Decimal(format_usd(cost))
    assert credits["data"]["balance"] == Decimal("5") - Decimal(format_usd(cost))

    status, key = get(gateway, "/key", cust.key)
    assert status == 200
    assert key["data"]["name"] == "ci" and key["data"]["limit"] == Decimal("2")
    assert key["data"]["usage"] == Decimal(format_usd(cost))
    assert key["data"]["limit_remaining"] == Decimal("2") - Decimal(format_usd(cost))
    assert key["data"]["models"] == ["test/*"]
    limits = key["data"]["limits"]
    assert limits["key"]["rpm"] == 100 and limits["key"]["daily_limit"] == Decimal("1.5") and limits["key"]["tpm"] is None
    assert limits["account"] == dict.fromkeys(limits["account"], None)  # the account has no limits of its own
    assert cust.key not in json.dumps(key, default=str)

    status, gen = get(gateway, f"/generation?id={request_id}", cust.key)
    assert status == 200
    data = gen["data"]
    assert data["id"] == request_id and data["model"] == MODEL and data["status"] == "ok"
    assert (data["tokens_prompt"], data["tokens_completion"]) == (completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert data["total_cost"] == Decimal(format_usd(cost))
    assert data["usage_estimated"] is False and data["latency"] >= 0

    other = customer(gateway, "other@example.com")
    assert get(gateway, f"/generation?id={request_id}", other.key)[0] == 404  # not another account's
    assert get(gateway, "/generation", cust.key)[0] == 400
    assert get(gateway, "/generation?id=gen-nope", cust.key)[0] == 404


@pytest.mark.parametrize("path", ["/credits", "/key", "/generation?id=x"])
def test_account_endpoints_need_a_key(gateway: Harness, path: str):
    status, body = get(gateway, path)
    assert status == 401 and body["error"]["code"] == "missing_api_key"
