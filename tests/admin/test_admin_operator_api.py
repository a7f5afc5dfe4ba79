"""The operator endpoints added for the console's admin pages: PATCH users and channels, channel tests, statistics.

Over real HTTP against a running gateway; user changes run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any, Callable

import openai
import pytest

from tests.admin.test_admin_api import ADMIN_EMAIL, LIMIT, SECRET, AdminClient, _assert_no_secret, admin_client, assert_error
from tests.conftest import UPSTREAM_KEY
from tests.support.harness import Harness
from tests.support.scenarios import MODEL, cost_nanos, priced_model
from tokenhub.accounts import service as accounts
from tokenhub.errors import Conflict, InvalidRequest
from tokenhub.money import format_usd


@pytest.fixture
def admin(gateway: Harness) -> AdminClient:
    return admin_client(gateway)


# -- users: disable / enable, admin rights ---------------------------------------------------------


def test_disable_and_enable_a_user(database_url: str, make_gateway: Callable[..., Harness]) -> None:
    harness = make_gateway(database_url)
    admin = admin_client(harness)
    harness.user("bob@x.io", "10")
    bob_key = harness.key("bob@x.io", limit_nanos=LIMIT)
    assert admin.public("/key", key=bob_key).status == 200

    disabled = admin.patch("/api/admin/users/bob@x.io", {"disabled": True}).data
    assert disabled["disabled"] is True and disabled["email"] == "bob@x.io"
    err = assert_error(admin.public("/key", key=bob_key), 401)  # at once, on this process
    assert err["type"] == "authentication_error"
    assert admin.get("/api/admin/users/bob@x.io").data["disabled"] is True

    assert admin.patch("/api/admin/users/bob@x.io", {"disabled": False}).data["disabled"] is False
    assert admin.public("/key", key=bob_key).status == 200

    # an admin key gains and loses the admin API with the user's rights
    made = admin.patch("/api/admin/users/bob@x.io", {"is_admin": True}).data
    assert made["is_admin"] is True
    bob_admin = AdminClient(harness, bob_key)
    assert bob_admin.get("/api/admin/users").status == 200
    assert bob_admin.patch("/api/admin/users/bob@x.io", {"is_admin": False}).status == 400  # not yourself
    assert admin.patch("/api/admin/users/bob@x.io", {"is_admin": False}).data["is_admin"] is False
    assert_error(bob_admin.get("/api/admin/users"), 403, code="admin_only")


def test_admins_cannot_lock_themselves_or_everyone_out(database_url: str, make_gateway: Callable[..., Harness]) -> None:
    harness = make_gateway(database_url)
    admin = admin_client(harness)
    assert_error(admin.patch(f"/api/admin/users/{ADMIN_EMAIL}", {"disabled": True}), 400, code="own_account")
    assert_error(admin.patch(f"/api/admin/users/{ADMIN_EMAIL}", {"is_admin": False}), 400, code="own_account")
    me = admin.get(f"/api/admin/users/{ADMIN_EMAIL}").data
    assert (me["is_admin"], me["disabled"]) == (True, False)

    # From the CLI (no acting user) the last enabled admin is still kept.
    with pytest.raises(Conflict) as last:
        harness.write(lambda c: accounts.set_disabled(c, ADMIN_EMAIL, True))
    assert last.value.code == "last_admin"
    with pytest.raises(Conflict):
        harness.write(lambda c: accounts.set_admin(c, ADMIN_EMAIL, False))

    # A second admin may demote the first; then the second is the last one.
    harness.user("op@x.io", None, admin=True)
    op = AdminClient(harness, harness.key("op@x.io", limit_nanos=LIMIT))
    assert op.patch(f"/api/admin/users/{ADMIN_EMAIL}", {"is_admin": False}).data["is_admin"] is False
    assert_error(admin.get("/api/admin/users"), 403)
    # a disabled admin does not count as one that can still log in
    harness.write(lambda c: accounts.set_admin(c, ADMIN_EMAIL, True))
    harness.write(lambda c: accounts.set_disabled(c, ADMIN_EMAIL, True))
    with pytest.raises(Conflict):
        harness.write(lambda c: accounts.set_admin(c, "op@x.io", False))
    assert harness.read(lambda c: accounts.get_user(c, "op@x.io")).is_admin


def test_patch_user_refusals(admin: AdminClient) -> None:
    admin.post("/api/admin/users", {"email": "bob@x.io"})
    assert_error(admin.patch("/api/admin/users/bob@x.io", {}), 400, says="nothing to change")
    assert_error(admin.patch("/api/admin/users/bob@x.io", {"disabled": "yes"}), 400, param="disabled")
    assert_error(admin.patch("/api/admin/users/bob@x.io", {"is_admin": 1}), 400, param="is_admin")
    assert_error(admin.patch("/api/admin/users/bob@x.io", raw=b"{oops"), 400, says="JSON")
    assert_error(admin.patch("/api/admin/users/nobody@x.io", {"disabled": True}), 404, code="user_not_found")
    bob = admin.get("/api/admin/users/bob@x.io").data
    assert (bob["is_admin"], bob["disabled"]) == (False, False)


def test_set_flags_service_is_idempotent(gateway: Harness) -> None:
    bob = gateway.user("bob@x.io", None)
    twice = [gateway.write(lambda c: accounts.set_disabled(c, "bob@x.io", True)) for _ in range(2)]
    assert twice[0] == twice[1] and twice[0]["disabled"] is True
    # enabling yourself, or granting yourself what you have, locks nobody out
    assert gateway.write(lambda c: accounts.set_disabled(c, bob["id"], False, acting_user_id=bob["id"]))["disabled"] is False
    with pytest.raises(InvalidRequest):
        gateway.write(lambda c: accounts.set_disabled(c, bob["id"], True, acting_user_id=bob["id"]))


# -- channels: edit, enable, test ------------------------------------------------------------------


def test_patch_channel(gateway: Harness, admin: AdminClient, upstream_url: str, fake_openai: Any) -> None:
    priced_model(gateway, upstream_url, channel=False)
    gateway.user("bob@x.io", "10")
    client = gateway.client(gateway.key("bob@x.io"))
    messages = [{"role": "user", "content": "hi"}]
    ch = admin.post("/api/admin/channels", {"provider": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
                                            "api_key": SECRET, "name": "local", "models": [MODEL]}).data
    with pytest.raises(openai.APIStatusError):  # nothing listens on port 9
        client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]

    # a new address and key, a rename and an upstream id: effective at once
    patched = admin.patch(f"/api/admin/channels/{ch['id']}", {"base_url": upstream_url, "api_key": UPSTREAM_KEY, "name": "fake",
                                                             "models": [f"{MODEL}=renamed-model"], "priority": 3, "weight": 7})
    _assert_no_secret(patched, UPSTREAM_KEY)
    data = patched.data
    assert (data["name"], data["base_url"], data["priority"], data["weight"]) == ("fake", upstream_url, 3, 7)
    assert data["models"] == {MODEL: "renamed-model"}
    reply = client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert reply.choices[0].message.content
    assert fake_openai.requests[-1].json["model"] == "renamed-model"
    assert fake_openai.requests[-1].headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"

    # an empty key keeps the stored one; fields not given are kept
    kept = admin.patch("/api/admin/channels/fake", {"api_key": "", "weight": 2}).data
    assert (kept["weight"], kept["priority"], kept["models"]) == (2, 3, {MODEL: "renamed-model"})
    client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert fake_openai.requests[-1].headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"

    # disabled: no route; enabled: served again
    assert admin.patch("/api/admin/channels/fake", {"enabled": False}).data["enabled"] is False
    with pytest.raises(openai.APIStatusError) as gone:
        client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert gone.value.status_code == 503
    assert admin.patch("/api/admin/channels/fake", {"enabled": True}).data["enabled"] is True
    client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]

    # models: null serves the provider's whole catalog
    assert admin.patch("/api/admin/channels/fake", {"models": None}).data["models"] is None

    patch = lambda body, ref="fake": admin.patch(f"/api/admin/channels/{ref}", body)  # noqa: E731
    admin.post("/api/admin/channels", {"provider": "deepseek", "api_key": "sk-other", "name": "other"})
    assert_error(patch({"name": "other"}), 409, code="channel_exists", param="name")
    assert_error(patch({"name": "bad name"}), 400, param="name")
    assert_error(patch({"base_url": "ftp://x"}), 400, param="base_url")
    assert_error(patch({"models": ["no/such-model"]}), 400, param="models")
    assert_error(patch({"models": 5}), 400, param="models")
    assert_error(patch({"weight": 0}), 400, param="weight")
    assert_error(patch({"priority": "high"}), 400, param="priority")
    assert_error(patch({"enabled": "no"}), 400, param="enabled")
    assert_error(patch({"api_key": 5}), 400, param="api_key")
    assert_error(patch({"weight": 1}, "nope"), 404, code="channel_not_found")
    assert admin.patch("/api/admin/channels/fake", {"name": "fake"}).data["name"] == "fake"  # its own name is not a clash
    final = admin.get("/api/admin/channels").data[0]
    assert (final["name"], final["weight"], final["base_url"]) == ("fake", 2, upstream_url)


def test_channel_test_endpoint(gateway: Harness, admin: AdminClient, upstream_url: str) -> None:
    priced_model(gateway, upstream_url, channel=False)
    good = admin.post("/api/admin/channels", {"provider": "openai-compatible", "base_url": upstream_url, "api_key": UPSTREAM_KEY,
                                              "name": "good", "models": [MODEL]}).data
    result = admin.post(f"/api/admin/channels/{good['id']}/test").data
    assert result["ok"] is True and result["channel"] == "good" and result["model"] == MODEL
    assert isinstance(result["latency_ms"], int) and result["detail"].startswith("answered")

    wrong = "sk-wrong-key-0123456789abcdef"
    admin.post("/api/admin/channels", {"provider": "openai-compatible", "base_url": upstream_url, "api_key": wrong,
                                       "name": "bad", "models": [MODEL]})
    reply = admin.post("/api/admin/channels/bad/test")
    failed = reply.data
    assert failed["ok"] is False and "401" in failed["detail"]
    assert wrong not in reply.body.decode() and wrong[:12] not in reply.body.decode()
    assert upstream_url not in reply.body.decode()

    admin.patch("/api/admin/channels/bad", {"enabled": False})
    assert_error(admin.post("/api/admin/channels/bad/test"), 409, code="channel_disabled")
    assert_error(admin.post("/api/admin/channels/nope/test"), 404, code="channel_not_found")


# -- statistics ---------------------------------------------------------------------------------------


def test_stats_endpoints(gateway: Harness, admin: AdminClient, upstream_url: str) -> None:
    priced_model(gateway, upstream_url)
    gateway.user("bob@x.io", "10")
    client = gateway.client(gateway.key("bob@x.io"))
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    cost = cost_nanos(reply.usage.prompt_tokens, reply.usage.completion_tokens)

    overview = admin.get("/api/admin/stats/overview?days=30").data
    assert overview["days"] == 30 and len(overview["by_day"]) == 30
    totals = overview["totals"]
    assert totals["requests"] == 1 and totals["errors"] == 0
    assert totals["tokens"] == reply.usage.prompt_tokens + reply.usage.completion_tokens
    # money as exact USD strings; test/priced is the operator's own model: revenue without a list price
    assert totals["revenue"] == format_usd(cost) and totals["unpriced_revenue"] == format_usd(cost)
    assert totals["upstream_cost"] == "0" and totals["margin"] == "0"
    assert overview["top_customers"] == [{"user_id": overview["top_customers"][0]["user_id"], "email": "bob@x.io", "requests": 1,
                                          "tokens": totals["tokens"], "revenue": format_usd(cost)}]
    assert overview["by_channel"][0]["channel"] == "fake-test-priced"
    assert admin.get("/api/admin/stats/overview").data["days"] == 7
    for bad in ("3", "abc", "-7", "1000000000000000000000"):
        assert_error(admin.get(f"/api/admin/stats/overview?days={bad}"), 400, param="days")

    channels = admin.get("/api/admin/stats/channels").data
    assert [c["name"] for c in channels] == ["fake-test-priced"]
    hour = channels[0]["hour"]
    assert hour["requests"] == 1 and hour["errors"] == 0 and hour["p50_ms"] == hour["p95_ms"] == hour["avg_ms"]
    assert channels[0]["day"]["requests"] == 1
