"""Server tools the gateway cannot bill are refused before any upstream call, never served free:
a 400 in the route's own format that names the tool, nothing held, nothing charged."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tokenhub.simulator.anthropic import FakeAnthropicState
from tokenhub.simulator.openai import FakeOpenAIState


@pytest.fixture
def env(claude_customer):
    return claude_customer


UNPRICED = [
    # (extra request fields, the name the error must carry)
    ({"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]}, "code_execution_20250825"),
    ({"container": "container_011CPR5CNjB747bTd36fQLFk"}, "container"),
    ({"mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "ex"}],
      "tools": [{"type": "mcp_toolset", "mcp_server_name": "ex"}]}, "mcp_toolset"),
    ({"tools": [{"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"}]}, "tool_search_tool_regex_20251119"),
    ({"tools": [{"type": "future_oracle_20991231", "name": "oracle"}]}, "future_oracle_20991231"),  # unknown: may cost money
]


@pytest.mark.parametrize(("extra", "name"), UNPRICED, ids=[n for _, n in UNPRICED])
def test_an_unpriced_server_tool_is_refused_with_its_name(env, fake_anthropic: FakeAnthropicState, extra: dict, name: str):
    gw, cust, client = env
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
                               extra_body=extra)
    error = exc.value.body["error"]
    assert error["type"] == "invalid_request_error" and f"'{name}'" in error["message"]
    assert fake_anthropic.requests == []
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0 and gw.credits(cust.email)["held_nanos"] == 0


def test_client_tools_of_anthropic_are_not_server_tools(env, fake_anthropic: FakeAnthropicState):
    """bash / text_editor / computer / memory run at the client: tokens only, never refused."""
    _, _, client = env
    client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
                           extra_body={"tools": [{"type": "bash_20250124", "name": "bash"},
                                                 {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}]})
    assert [t["type"] for t in fake_anthropic.requests[-1].json["tools"]] == ["bash_20250124", "text_editor_20250728"]


@pytest.mark.parametrize("max_uses", [0, -3, "5", 2.5, True])
def test_a_bad_max_uses_is_refused(env, fake_anthropic: FakeAnthropicState, max_uses):
    _, _, client = env
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
                               extra_body={"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": max_uses}]})
    assert "max_uses" in exc.value.body["error"]["message"]
    assert fake_anthropic.requests == []


OPENAI_BUILTINS = [
    ({"web_search_options": {}}, "web_search_options"),
    ({"enable_search": True}, "enable_search"),
    ({"plugins": [{"id": "web"}]}, "plugins"),
    ({"tools": [{"type": "web_search", "web_search": {"enable": True}}]}, "web_search"),
    ({"tools": [{"type": "builtin_function", "function": {"name": "$web_search"}}]}, "builtin_function"),
    ({"tools": [{"google_search": {}}]}, "google_search"),  # Gemini's OpenAI-compatible endpoint
]


@pytest.mark.parametrize(("extra", "name"), OPENAI_BUILTINS, ids=[n for _, n in OPENAI_BUILTINS])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_openai_built_in_search_is_refused_on_the_relayed_path(env, fake_openai: FakeOpenAIState, extra: dict, name: str,
                                                             stream: bool):
    """Chat Completions usage does not say how many searches ran, so the per-call fee cannot be metered."""
    gw, cust, _ = env
    client = gw.client(cust.key)
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="deepseek/deepseek-v4-pro", messages=[{"role": "user", "content": "news?"}],
                                       stream=stream, extra_body=extra)
    assert exc.value.body["code"] == "server_tool_not_priced" and f"'{name}'" in exc.value.body["message"]
    assert fake_openai.requests == []
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0 and gw.credits(cust.email)["held_nanos"] == 0
