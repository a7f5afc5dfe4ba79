"""The limits the real Messages API enforces on a request body (each a 400 ``invalid_request_error``)."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any

from tokenhub.simulator.anthropic.errors import invalid
from tokenhub.simulator.anthropic.prompt import blocks_of, thinking_enabled
from tokenhub.simulator.anthropic.signatures import redacted_data_valid, sign_thinking
from tokenhub.simulator.anthropic.state import FakeAnthropicState

MIN_THINKING_BUDGET = 1024
TOOL_USE_ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
EXTENDED_THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


@dataclass
class Turn:
    role: str
    index: int  # index of the turn's first message in the request
    blocks: list[tuple[int, int, dict[str, Any]]]  # (message index, block index, block)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_common(body: Any, state: FakeAnthropicState, *, need_max_tokens: bool) -> dict[str, Any]:
    """Checks shared by /v1/messages and /v1/messages/count_tokens."""
    if not isinstance(body, dict):
        raise invalid("Input should be a valid dictionary")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("model: Field required")
    if need_max_tokens:
        if "max_tokens" not in body:
            raise invalid("max_tokens: Field required")
        if not _is_int(body["max_tokens"]):
            raise invalid("max_tokens: Input should be a valid integer")
        if body["max_tokens"] < 0:
            raise invalid("max_tokens: Input should be greater than or equal to 0")
    messages = body.get("messages")
    if messages is None:
        raise invalid("messages: Field required")
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    turns = validate_messages(messages, state)
    validate_tool_pairing(turns)
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or not 0 <= temperature <= 1):
        raise invalid("temperature: range: 0..1")
    validate_thinking(body, turns, need_max_tokens)
    validate_server_tools(body.get("tools"))
    return body


def validate_server_tools(tools: Any) -> None:
    """``max_uses`` of a server tool: a positive integer when present."""
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        if not isinstance(tool, dict) or "max_uses" not in tool:
            continue
        max_uses = tool["max_uses"]
        if not _is_int(max_uses):
            raise invalid(f"tools.{i}.max_uses: Input should be a valid integer")
        if max_uses < 1:
            raise invalid(f"tools.{i}.max_uses: Input should be greater than or equal to 1")


def validate_messages(messages: list[Any], state: FakeAnthropicState) -> list[Turn]:
    roles = ("user", "assistant", "system") if state.allow_system_role else ("user", "assistant")
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in roles:
            expected = " or ".join(f"'{r}'" for r in roles)
            raise invalid(f"messages.{i}.role: Input should be {expected}")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise invalid(f"messages.{i}.content: Input should be a valid list")
        if role != "assistant" and (content == "" or content == []):
            raise invalid(
                f"messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            )
        blocks = blocks_of(content)
        for j, block in enumerate(blocks):
            validate_block(i, j, role, block, state)
        if role == "system":
            continue  # SDK 2.x mid-conversation system message: no turn of its own
        if turns and turns[-1].role == role:  # consecutive same-role turns are combined
            turns[-1].blocks += [(i, j, b) for j, b in enumerate(blocks)]
        else:
            turns.append(Turn(role, i, [(i, j, b) for j, b in enumerate(blocks)]))
    if not turns or turns[0].role != "user":
        raise invalid('messages: first message must use the "user" role')
    return turns


def validate_block(i: int, j: int, role: str, block: Any, state: FakeAnthropicState) -> None:
    where = f"messages.{i}.content.{j}"
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise invalid(f"{where}: Input should be a valid dictionary or object to extract fields from")
    kind = block["type"]
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise invalid(f"{where}.text.text: Field required")
        if not text:
            raise invalid("messages: text content blocks must be non-empty")
        if not text.strip():
            raise invalid("messages: text content blocks must contain non-whitespace text")
    elif kind == "tool_use":
        if role != "assistant":
            raise invalid(f"{where}: `tool_use` blocks can only be in `assistant` messages")
        tool_id = block.get("id")
        if not isinstance(tool_id, str):
            raise invalid(f"{where}.tool_use.id: Field required")
        if not TOOL_USE_ID_RE.match(tool_id):
            raise invalid(f"{where}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(block.get("name"), str) or not block["name"]:
            raise invalid(f"{where}.tool_use.name: Field required")
        if not isinstance(block.get("input"), dict):
            raise invalid(f"{where}.tool_use.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if role != "user":
            raise invalid(f"{where}: `tool_result` blocks can only be in `user` messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise invalid(f"{where}.tool_result.tool_use_id: Field required")
        for k, inner in enumerate(blocks_of(block.get("content")) if isinstance(block.get("content"), list) else []):
            if isinstance(inner, dict) and inner.get("type") == "text":
                if not inner.get("text"):
                    raise invalid("messages: text content blocks must be non-empty")
                if not str(inner["text"]).strip():
                    raise invalid("messages: text content blocks must contain non-whitespace text")
            elif not isinstance(inner, dict):
                raise invalid(f"{where}.tool_result.content.{k}: Input should be a valid dictionary")
    elif kind == "thinking":
        if role != "assistant":
            raise invalid(f"{where}: `thinking` blocks can only be in `assistant` messages")
        thinking, signature = block.get("thinking"), block.get("signature")
        if not isinstance(thinking, str):
            raise invalid(f"{where}.thinking.thinking: Field required")
        if not isinstance(signature, str):
            raise invalid(f"{where}.thinking.signature: Field required")
        if not hmac.compare_digest(sign_thinking(state.signing_key, thinking), signature):
            raise invalid(f"{where}: Invalid `signature` in `thinking` block")
    elif kind == "redacted_thinking":
        if role != "assistant":
            raise invalid(f"{where}: `redacted_thinking` blocks can only be in `assistant` messages")
        if not redacted_data_valid(state.signing_key, block.get("data")):
            raise invalid(f"{where}: Invalid `data` in `redacted_thinking` block")


def validate_tool_pairing(turns: list[Turn]) -> None:
    for t, turn in enumerate(turns):
        if turn.role != "assistant":
            continue
        tool_ids = [b["id"] for _, _, b in turn.blocks if b.get("type") == "tool_use"]
        if not tool_ids:
            continue
        answered: set[str] = set()
        following = turns[t + 1] if t + 1 < len(turns) else None
        if following is not None and following.role == "user":
            for _, _, block in following.blocks:
                if block.get("type") != "tool_result":
                    break  # tool_result blocks must come first
                answered.add(block["tool_use_id"])
        missing = [tool_id for tool_id in tool_ids if tool_id not in answered]
        if missing:
            last_index = max(i for i, _, _ in turn.blocks)
            raise invalid(
                f"messages.{last_index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
    for t, turn in enumerate(turns):
        if turn.role != "user":
            continue
        previous = turns[t - 1] if t > 0 else None
        known = {b["id"] for _, _, b in previous.blocks if b.get("type") == "tool_use"} if previous else set()
        for i, j, block in turn.blocks:
            if block.get("type") == "tool_result" and block["tool_use_id"] not in known:
                raise invalid(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )


def validate_thinking(body: dict[str, Any], turns: list[Turn], need_max_tokens: bool) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive", "between_tools"):
        raise invalid(
            "thinking: Input tag found using 'type' does not match any of the expected tags: "
            "'enabled', 'disabled', 'adaptive', 'between_tools'"
        )
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not _is_int(budget):
            raise invalid("thinking.enabled.budget_tokens: Field required")
        if budget < MIN_THINKING_BUDGET:
            raise invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if need_max_tokens and body["max_tokens"] <= budget:
            raise invalid(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                f"documentation at {EXTENDED_THINKING_DOCS}#max-tokens-and-context-window-size"
            )
    if not thinking_enabled(body):
        return
    tool_choice = body.get("tool_choice")
    if isinstance(tool_choice, dict) and tool_choice.get("type") in ("any", "tool"):
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise invalid(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            f"documentation at {EXTENDED_THINKING_DOCS}#feature-compatibility"
        )
    assistant_turns = [turn for turn in turns if turn.role == "assistant"]
    if not assistant_turns:
        return
    last = assistant_turns[-1]
    if any(b.get("type") == "tool_use" for _, _, b in last.blocks):
        i, j, first = last.blocks[0]
        if first.get("type") not in ("thinking", "redacted_thinking"):
            raise invalid(
                f"messages.{i}.content.{j}.type: Expected `thinking` or `redacted_thinking`, but found "
                f"`{first.get('type')}`. When `thinking` is enabled, a final `assistant` message must start with "
                "a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
                "recommend you include thinking blocks from previous turns. To avoid this requirement, disable "
                f"`thinking`. Please consult our documentation at {EXTENDED_THINKING_DOCS}"
            )
