"""Image generation through the public API against the fake Ark (Seedream): priced per image returned."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from tests.conftest import UPSTREAM_KEY
from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.money import format_usd, usd_to_nanos

MODEL = "bytedance/doubao-seedream-5.0"


def post(gw: Harness, key: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"{gw.base_url}/images/generations", method="POST", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def env(gateway: Harness, media_servers):
    gateway.channel("ark", media_servers["ark"].url + "/api/v3", api_key=UPSTREAM_KEY, name="ark")
    cust = customer(gateway, credits_usd="5")
    price = gateway.gw.directory.catalog.get(MODEL).pricing
    return gateway, cust, price


@pytest.mark.parametrize("fmt", ["url", "b64_json"])
def test_n_images_are_generated_and_charged_each(env, fmt):
    gw, cust, pricing = env
    status, body = post(gw, cust.key, {"model": MODEL, "prompt": "a lighthouse", "n": 2, "size": "2K", "response_format": fmt})
    assert status == 200, body
    assert len(body["data"]) == 2 and all(fmt in item for item in body["data"])
    unit = pricing.per_image_by_size.get("2K", pricing.per_image)
    assert body["usage"]["generated_images"] == 2
    assert Decimal(str(body["usage"]["cost"])) == Decimal(format_usd(2 * unit))
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 2 * unit and gw.ledger_report().ok


def test_an_upstream_refusal_is_not_charged(env):
    gw, cust, _ = env
    status, body = post(gw, cust.key, {"model": MODEL, "prompt": "x #fake:status=429", "n": 1})
    assert status == 429 and body["error"]["message"]
    gw.flush()
    assert gw.credits(cust.email)["balance_nanos"] == usd_to_nanos("5")


@pytest.mark.parametrize(("body", "param"), [({"prompt": ""}, "prompt"), ({"n": 0}, "n"), ({"n": 11}, "n"),
                                              ({"response_format": "png"}, "response_format"), ({"size": 12}, "size")])
def test_bad_image_requests(env, body, param):
    gw, cust, _ = env
    status, answer = post(gw, cust.key, {"model": MODEL, "prompt": "x", **body})
    assert status == 400 and answer["error"]["param"] == param


def test_chat_models_are_not_image_models(env):
    gw, cust, _ = env
    status, answer = post(gw, cust.key, {"model": "openai/gpt-4.1", "prompt": "x"})
    assert status == 400 and answer["error"]["param"] == "model"
