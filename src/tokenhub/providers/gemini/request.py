"""The gateway's OpenAI chat request as a Gemini ``generateContent`` request.

Choices made here (and why):

* **Thought signatures** (Gemini 3 rejects a replayed ``functionCall`` part without one) travel in
  the tool-call id: ``call_<24 hex>__thought__<signature as unpadded url-safe base64>``. Every
  OpenAI client echoes ids verbatim, so the signature comes back on the next turn whatever the
  client drops; the separator is LiteLLM's, so ids minted there decode here too. When the id
  carries none we also look at ``tool_calls[].extra_content.google.thought_signature`` (Gemini's
  own OpenAI layer) and at ``reasoning_details`` entries ``{"type": "reasoning.encrypted", "id":
  <tool call id>, "data": <signature>}`` (OpenRouter's shape). A model turn whose first call still
  has none gets Google's documented ``skip_thought_signature_validator`` on Gemini 3+ models.
  Limits: ids grow by the signature's length (often hundreds of characters; clients that cap id
  length, or that rewrite ids, lose the signature and fall back to the skip value); signatures on
  text parts (optional for Google) are not carried.
* **Schemas** go out as ``parametersJsonSchema`` / ``responseJsonSchema``: v1beta takes JSON
  Schema there as-is, so ``additionalProperties``, ``$ref``, ``anyOf`` with null and friends need
  no lossy OpenAPI rewrite. Only ``$schema`` is dropped, and a tool whose parameters are an object
  without properties is declared without parameters (Gemini rejects an empty OBJECT).
* **n > 1** maps to ``candidateCount`` for non-streaming calls; a stream with ``n > 1`` is refused
  (the chunk stream speaks for choice 0 only).
* **finishReason** ``STOP`` is ``tool_calls`` when the candidate called a function (P2);
  ``MAX_TOKENS`` is ``length``; the safety family and ``RECITATION`` are ``content_filter``;
  ``MALFORMED_FUNCTION_CALL`` / ``UNEXPECTED_TOOL_CALL`` are an upstream error (502, code
  ``upstream_malformed_function_call``; in a stream ``.error``) rather than a silent empty
  ``stop`` that would end a client's agent loop as if the model were done; anything else is
  ``stop``.
* **A blocked prompt** (HTTP 200, no candidates, ``promptFeedback.blockReason``) raises
  ``InvalidRequest`` (400, code ``content_filter``); in a stream it becomes ``.error``.
* **Tool results** that are not a JSON object are wrapped as ``{"output": ...}`` — the key
  Google's ``FunctionResponse`` documents for function output.
* **reasoning_effort** becomes ``thinkingLevel`` on Gemini 3+ (never together with a budget) and
  ``thinkingBudget`` elsewhere (Google's own OpenAI layer maps low/medium/high to 1K/8K/24K), with
  ``includeThoughts`` so thoughts come back as ``reasoning_content``. ``none`` asks for the least
  thinking the model allows. Models older than 2.5 get no thinking config.
* **Images**: data URLs are decoded here; http(s) URLs are fetched by the caller (SSRF-safe) and
  handed in as ``images={url: (mime, bytes)}`` — see ``remote_image_urls``.
* Dropped (no Gemini equivalent): ``parallel_tool_calls``, ``user``, ``logprobs``, ``metadata``,
  ``store``, ``service_tier``, ``stream_options``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import orjson

from tokenhub.errors import InvalidRequest
from tokenhub.providers.base import (
    UpstreamRequest,
)
from tokenhub.providers.gemini.wire import decode_call_id
from tokenhub.upstream import Channel

SKIP_SIGNATURE = "skip_thought_signature_validator"


MAX_INLINE_BYTES = 20 * 1024 * 1024  # Gemini's limit for a request carrying inline data


THINKING_BUDGETS = {"minimal": 128, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576, "max": 24576}


_MODEL_VERSION = re.compile(r"gemini-(\d+(?:\.\d+)?)")


_DATA_URL = re.compile(r"data:([^;,]*)((?:;[^;,]*)*),(.*)", re.DOTALL)


Images = dict[str, tuple[str, bytes]]


def remote_image_urls(payload: dict[str, Any]) -> list[str]:
    """The http(s) image URLs of a chat payload, in order and once each: the caller fetches them."""
    urls: list[str] = []
    for message in payload.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            url = _image_url(part)
            if url and url[:8].lower().startswith(("http://", "https://")) and url not in urls:
                urls.append(url)
    return urls


def _image_url(part: Any) -> str | None:
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    return url if isinstance(url, str) else None


def build_request(
    payload: dict[str, Any],
    upstream_model: str,
    channel: Channel,
    *,
    stream: bool,
    images: Images | None = None,
    max_output: int | None = None,
) -> UpstreamRequest:
    body = to_gemini(payload, upstream_model, stream=stream, images=images)
    if max_output is not None:  # exactly the bound the hold covers (the client's, clamped to the model's cap)
        body.setdefault("generationConfig", {})["maxOutputTokens"] = max_output
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    max_output = body.get("generationConfig", {}).get("maxOutputTokens")
    return UpstreamRequest(
        url=f"{channel.base_url.rstrip('/')}/v1beta/models/{quote(upstream_model, safe='-._~')}:{method}",
        headers={
            "x-goog-api-key": channel.api_key,
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        },
        body=orjson.dumps(body),
        max_output=max_output if isinstance(max_output, int) else None,
    )


def to_gemini(payload: dict[str, Any], upstream_model: str, *, stream: bool, images: Images | None = None) -> dict[str, Any]:
    """The Gemini ``GenerateContentRequest`` (REST JSON) for an OpenAI chat payload."""
    body: dict[str, Any] = {}
    system, contents = _contents(payload.get("messages") or [], images or {}, upstream_model)
    if not contents:
        raise InvalidRequest("the conversation needs at least one user message besides system messages", param="messages")
    if system:
        body["systemInstruction"] = {"parts": system}
    body["contents"] = contents
    tools = _tools(payload.get("tools"))
    if tools:
        body["tools"] = [{"functionDeclarations": tools}]
        tool_config = _tool_config(payload.get("tool_choice"))
        if tool_config:
            body["toolConfig"] = {"functionCallingConfig": tool_config}
    config = _generation_config(payload, upstream_model, stream)
    if config:
        body["generationConfig"] = config
    return body


def _contents(messages: list[Any], images: Images, model: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name, from earlier assistant turns
    budget = [MAX_INLINE_BYTES]
    for i, message in enumerate(messages):
        role = message.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend({"text": t} for t in _texts(message.get("content"), where) if t)
            continue
        if role == "user":
            parts = _user_parts(message.get("content"), images, budget, where)
            gemini_role = "user"
        elif role == "assistant":
            parts = _assistant_parts(message, call_names, where)
            gemini_role = "model"
        elif role in ("tool", "function"):
            parts = [_function_response(message, call_names, where)]
            gemini_role = "user"
        else:
            raise InvalidRequest(f"{where}.role '{role}' is not supported for this model", param=f"{where}.role")
        if not parts:
            continue
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    if _major_version(model) >= 3:
        for content in contents:
            calls = [p for p in content["parts"] if "functionCall" in p]
            if calls and "thoughtSignature" not in calls[0]:
                calls[0]["thoughtSignature"] = SKIP_SIGNATURE
    return system, contents


def _texts(content: Any, where: str) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        out = []
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in ("text", "refusal"):
                value = part.get("text", part.get("refusal"))
                if isinstance(value, str):
                    out.append(value)
                    continue
            raise InvalidRequest(f"{where}.content[{j}] must be a text part here", param=f"{where}.content")
        return out
    raise InvalidRequest(f"{where}.content must be a string or an array of parts", param=f"{where}.content")


def _user_parts(content: Any, images: Images, budget: list[int], where: str) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of parts", param=f"{where}.content")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            url = _image_url(part)
            if not url:
                raise InvalidRequest(f"{at}.image_url.url is required", param=at)
            parts.append(_image_part(url, images, budget, at))
        elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):
            audio = part["input_audio"]
            data = _checked_base64(audio.get("data"), budget, at)
            fmt = audio.get("format") if isinstance(audio.get("format"), str) else "wav"
            parts.append({"inlineData": {"mimeType": f"audio/{'mpeg' if fmt == 'mp3' else fmt}", "data": data}})
        elif kind == "file" and isinstance(part.get("file"), dict) and isinstance(part["file"].get("file_data"), str):
            mime, data = _data_url(part["file"]["file_data"], budget, at)
            parts.append({"inlineData": {"mimeType": mime, "data": data}})
        else:
            raise InvalidRequest(f"{at}: part type {kind!r} is not supported for this model", param=at)
    return parts


def _image_part(url: str, images: Images, budget: list[int], at: str) -> dict[str, Any]:
    if url[:5].lower() == "data:":
        mime, data = _data_url(url, budget, at)
        if not mime.startswith("image/"):
            raise InvalidRequest(f"{at}: the data URL is not an image ({mime})", param=at)
    elif url[:8].lower().startswith(("http://", "https://")):
        fetched = images.get(url)
        if fetched is None:
            raise InvalidRequest(f"{at}: the image at {url[:200]} could not be fetched", param=at)
        mime, raw = fetched
        _spend(budget, len(raw), at)
        data = base64.b64encode(raw).decode()
    else:
        raise InvalidRequest(f"{at}: an image URL must be http(s) or a data URL", param=at)
    return {"inlineData": {"mimeType": mime, "data": data}}


def _data_url(url: str, budget: list[int], at: str) -> tuple[str, str]:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise InvalidRequest(f"{at}: malformed data URL", param=at)
    mime = match.group(1).strip().lower() or "text/plain"
    if ";base64" in match.group(2).lower():
        return mime, _checked_base64(match.group(3), budget, at)
    raw = unquote_to_bytes(match.group(3))
    _spend(budget, len(raw), at)
    return mime, base64.b64encode(raw).decode()


def _checked_base64(data: Any, budget: list[int], at: str) -> str:
    if not isinstance(data, str) or not data:
        raise InvalidRequest(f"{at}: base64 data is required", param=at)
    data = "".join(data.split())
    size = len(data) * 3 // 4 - data[-2:].count("=")
    _spend(budget, size, at)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{at}: the data is not valid base64", param=at) from None
    return data


def _spend(budget: list[int], size: int, at: str) -> None:
    budget[0] -= size
    if budget[0] < 0:
        raise InvalidRequest(
            f"{at}: inline media is limited to {MAX_INLINE_BYTES // (1024 * 1024)} MB per request for this model", param=at
        )


def _assistant_parts(message: dict[str, Any], call_names: dict[str, str], where: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": t} for t in _texts(message.get("content"), where) if t]
    encrypted = _encrypted_details(message.get("reasoning_details"))
    for k, call in enumerate(message.get("tool_calls") or ()):
        at = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"{at}.function.name is required", param=at)
        args = _arguments(function.get("arguments"), at)
        call_id = call.get("id")
        if isinstance(call_id, str):
            call_names[call_id] = name
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        signature = decode_call_id(call_id) or _extra_signature(call) or encrypted.get(str(call_id))
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _encrypted_details(details: Any) -> dict[str, str]:
    """OpenRouter-style ``reasoning_details`` signatures, by the tool-call id they belong to."""
    found: dict[str, str] = {}
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("type") == "reasoning.encrypted":
            call_id, data = detail.get("id"), detail.get("data")
            if isinstance(call_id, str) and isinstance(data, str) and data:
                found[call_id] = data
    return found


def _arguments(raw: Any, at: str) -> dict[str, Any]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise InvalidRequest(f"{at}.function.arguments must be a JSON object", param=at)
    return args


def _extra_signature(call: dict[str, Any]) -> str | None:
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _function_response(message: dict[str, Any], call_names: dict[str, str], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    if name is None and isinstance(message.get("name"), str) and message["name"]:
        name = message["name"]
    if name is None:
        raise InvalidRequest(
            f"{where}.tool_call_id {call_id!r} matches no tool call of an earlier assistant message",
            param=f"{where}.tool_call_id",
        )
    text = "".join(_texts(message.get("content"), where))
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    response = value if isinstance(value, dict) else {"output": value}
    return {"functionResponse": {"name": name, "response": response}}


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not tools:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", param="tools")
    declarations = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"tools[{i}] must be a function tool with a name", param=f"tools[{i}]")
        declaration: dict[str, Any] = {"name": function["name"]}
        if isinstance(function.get("description"), str) and function["description"]:
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if isinstance(parameters, dict) and _has_parameters(parameters):
            declaration["parametersJsonSchema"] = _json_schema(parameters)
        declarations.append(declaration)
    return declarations


def _has_parameters(schema: dict[str, Any]) -> bool:
    """False for the 'no arguments' schemas Gemini refuses: an object with no properties and nothing else."""
    if schema.get("properties"):
        return True
    return any(
        k not in ("type", "properties", "required", "additionalProperties", "$schema", "title", "description") for k in schema
    )


def _json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "$schema"}


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"mode": "ANY", "allowedFunctionNames": [function["name"]]}
    raise InvalidRequest("'tool_choice' must be auto, none, required or a named function", param="tool_choice")


def _generation_config(payload: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for source, target in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if payload.get(source) is not None:
            config[target] = payload[source]
    max_tokens = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = payload.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    stops = [s for s in stops if isinstance(s, str) and s]
    if stops:
        config["stopSequences"] = stops
    n = payload.get("n")
    if isinstance(n, int) and n > 1:
        if stream:
            raise InvalidRequest("'n' greater than 1 is not supported with streaming for this model", param="n")
        config["candidateCount"] = n
    fmt = payload.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if fmt["type"] == "json_schema" and isinstance(schema, dict):
            config["responseJsonSchema"] = _json_schema(schema)
    thinking = _thinking_config(payload.get("reasoning_effort"), model)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _major_version(model: str) -> float:
    """The Gemini generation a model id names (3.0 for gemini-3-pro-preview); 0 when it names none."""
    match = _MODEL_VERSION.search(model)
    return float(match.group(1)) if match else 0.0


def _thinking_config(effort: Any, model: str) -> dict[str, Any] | None:
    if not isinstance(effort, str) or not effort:
        return None
    effort = effort.lower()
    version = _major_version(model)
    pro, lite = "pro" in model, "lite" in model
    if version >= 3:  # thinking levels; cannot be switched off; Pro knows only LOW and HIGH
        level = {"none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM"}.get(effort, "HIGH")
        if pro and level in ("MINIMAL", "MEDIUM"):
            level = "LOW" if level == "MINIMAL" else "HIGH"
        config: dict[str, Any] = {"thinkingLevel": level}
    elif version and version < 2.5:
        return None  # no thinking on older models
    elif effort == "none":
        return {"thinkingBudget": 128 if pro else 0}  # 2.5 Pro cannot switch thinking off
    else:
        budget = THINKING_BUDGETS.get(effort, THINKING_BUDGETS["medium"])
        config = {"thinkingBudget": 512 if lite and budget < 512 else budget}
    if effort != "none":
        config["includeThoughts"] = True
    return config
