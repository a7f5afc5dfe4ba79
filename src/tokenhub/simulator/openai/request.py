"""Reading a chat request: its body, its key, the limits OpenAI enforces, its text."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tokenhub.simulator.common.recording import read_json
from tokenhub.simulator.openai.errors import FakeAPIError
from tokenhub.simulator.openai.state import FakeOpenAIState


def message_text(message: Any) -> str:
    """All text of a message (content strings/text parts, tool-call names and arguments)."""
    if not isinstance(message, dict):
        return ""
    texts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        texts.extend(
            p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            texts.extend(v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
    return " ".join(texts)


def count_prompt_tokens(messages: list[Any]) -> int:
    return sum(3 + len(message_text(m).split()) for m in messages)


def last_user_text(messages: list[Any]) -> str:
    """The directives' text: the last user message, unless tool results came after it (a tool loop's
    next step answers in plain text, as the Anthropic and Gemini fakes do)."""
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool":
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


# Chat Completions' parameters (openai-python's CompletionCreateParams), then the extensions of the
# OpenAI-compatible vendors this fake also stands for (DeepSeek, Qwen, GLM, Kimi, xAI ...). Anything
# else is refused as OpenAI refuses it — so a field only a gateway knows (OpenRouter's `models`,
# `provider`, `transforms` ...) cannot leak through unnoticed.
PARAMETERS = frozenset({
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs", "max_completion_tokens",
    "max_tokens", "messages", "metadata", "modalities", "model", "moderation", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning_effort",
    "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options",
    "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})  # fmt: skip
VENDOR_PARAMETERS = frozenset({
    "thinking", "enable_thinking", "thinking_budget", "top_k", "min_p", "repetition_penalty", "enable_search",
    "search_parameters", "do_sample", "request_id", "tool_stream", "reasoning_split",
})  # fmt: skip


def validate_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FakeAPIError(400, "Invalid type for request body: expected an object.")
    unknown = sorted(k for k in body if k not in PARAMETERS and k not in VENDOR_PARAMETERS)
    if unknown:
        raise FakeAPIError(400, f"Unrecognized request argument supplied: {', '.join(unknown)}")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise FakeAPIError(400, "you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise FakeAPIError(400, "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list):
        raise FakeAPIError(400, "Invalid type for 'messages': expected an array.", param="messages", code="invalid_type")
    if not messages:
        raise FakeAPIError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    _check_tool_call_ids(messages)
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128):
        raise FakeAPIError(
            400, f"Invalid value for 'n': {n!r}. Expected an integer between 1 and 128.", param="n", code="invalid_value"
        )
    if body.get("stream_options") is not None and not body.get("stream"):
        raise FakeAPIError(
            400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    return body


def _check_tool_call_ids(messages: list[Any]) -> None:
    """OpenAI's limit on tool-call ids: 40 characters, in an assistant's tool_calls and a tool message alike."""
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        fields = [(f"messages[{i}].tool_call_id", message.get("tool_call_id"))]
        fields += [(f"messages[{i}].tool_calls[{j}].id", call.get("id")) for j, call in enumerate(message.get("tool_calls") or [])
                   if isinstance(call, dict)]  # fmt: skip
        for param, value in fields:
            if isinstance(value, str) and len(value) > 40:
                raise FakeAPIError(
                    400,
                    f"Invalid '{param}': string too long. Expected a string with maximum length 40, "
                    f"but got a string with length {len(value)} instead.",
                    param=param,
                    code="string_above_max_length",
                )


async def read_body(request: web.Request, state: FakeOpenAIState) -> Any:
    recorded, _ = await read_json(request, state)
    parsed = recorded.json
    if parsed is None and recorded.raw.strip() != b"null":
        raise FakeAPIError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means "
            "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
            "payload, but what was sent was not valid JSON.)",
        )
    return parsed


def check_auth(request: web.Request, state: FakeOpenAIState) -> None:
    if state.api_keys is None:
        return
    authorization = request.headers.get("Authorization", "")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise FakeAPIError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code="invalid_api_key",
        )
    if key.strip() not in state.api_keys:
        hint = key.strip()[:3] + "*" * 4 + key.strip()[-4:]
        raise FakeAPIError(
            401,
            f"Incorrect API key provided: {hint}. You can find your API key at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
