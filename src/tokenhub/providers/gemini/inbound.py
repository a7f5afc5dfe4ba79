"""A Gemini ``generateContent`` request (the google-genai SDKs', Gemini CLI's) as the gateway's chat payload.

* ``systemInstruction`` -> a system message; ``contents`` turns (``user`` / ``model``) -> user and
  assistant messages. Parts: ``text`` (``thought: true`` parts of a model turn become
  ``reasoning_content``), ``inlineData`` -> an ``image_url`` data URL, ``fileData`` -> an image URL,
  ``functionCall`` -> an assistant tool call, ``functionResponse`` -> a ``tool`` message.
* Tool-call ids: a ``functionCall``'s own ``id`` when it has one, else one minted with its
  ``thoughtSignature`` inside (``wire.encode_call_id``), so a Gemini upstream gets the signature back;
  each ``functionResponse`` answers the earliest open call of its name (or its own ``id``).
* ``tools[].functionDeclarations`` (``parameters`` or ``parametersJsonSchema``) -> function tools;
  Google's own tools (``googleSearch``, ``codeExecution``, ``urlContext``) run at Google and are
  refused (400). ``toolConfig.functionCallingConfig``: AUTO -> auto, ANY -> required (or the one
  allowed function), NONE -> none.
* ``generationConfig``: temperature, topP, topK (dropped), maxOutputTokens, stopSequences,
  candidateCount -> n, seed, presencePenalty, frequencyPenalty, ``responseMimeType:
  application/json`` with ``responseJsonSchema`` / ``responseSchema`` -> ``response_format``;
  ``thinkingConfig``: ``thinkingLevel`` or ``thinkingBudget`` (0 -> none, up to 2,048 low, up to
  12,288 medium, more or -1 high) -> ``reasoning_effort``. ``safetySettings`` and
  ``cachedContent`` are not forwarded to a translated upstream.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from tokenhub.errors import InvalidRequest
from tokenhub.providers.gemini.wire import encode_call_id

GOOGLE_TOOLS = ("googleSearch", "google_search", "googleSearchRetrieval", "codeExecution", "code_execution", "urlContext",
                "url_context", "fileSearch", "computerUse", "googleMaps")  # fmt: skip
LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}


def translate_generate_request(body: Any, model: str, *, stream: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("Invalid JSON payload received. Expected an object.")
    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    if system is not None:
        text = _texts(system.get("parts") if isinstance(system, dict) else None)
        if text:
            messages.append({"role": "system", "content": text})
    contents = body.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified", param="contents")
    open_calls: list[tuple[str, str]] = []  # (name, id) of calls not answered yet
    for i, turn in enumerate(contents):
        if not isinstance(turn, dict) or not isinstance(turn.get("parts"), list):
            raise InvalidRequest(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty", param="contents")
        if turn.get("role", "user") == "model":
            messages.append(_model_turn(turn["parts"], open_calls))
        else:
            messages.extend(_user_turn(turn["parts"], open_calls, i))
    payload: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    _tools(body, payload)
    _generation(body.get("generationConfig") or body.get("generation_config") or {}, payload)
    return payload


def _texts(parts: Any) -> str:
    return "".join(p["text"] for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str))


def _model_turn(parts: list[Any], open_calls: list[tuple[str, str]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None}
    text, thoughts = [], []
    for part in parts:
        if not isinstance(part, dict):
            continue
        call = part.get("functionCall") or part.get("function_call")
        if isinstance(call, dict):
            call_id = call.get("id") or encode_call_id(part.get("thoughtSignature") or part.get("thought_signature"))
            open_calls.append((str(call.get("name") or ""), call_id))
            arguments = call.get("args") if isinstance(call.get("args"), dict) else {}
            message.setdefault("tool_calls", []).append(
                {"id": call_id, "type": "function", "function": {"name": str(call.get("name") or ""), "arguments": _json(arguments)}}
            )
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else text).append(part["text"])
    if text:
        message["content"] = "".join(text)
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    return message


def _user_turn(parts: list[Any], open_calls: list[tuple[str, str]], turn: int) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        response = part.get("functionResponse") or part.get("function_response")
        if isinstance(response, dict):
            tools.append({"role": "tool", "tool_call_id": _answered(response, open_calls), "content": _json(response.get("response", {}))})
        elif isinstance(part.get("text"), str):
            content.append({"type": "text", "text": part["text"]})
        elif isinstance(part.get("inlineData") or part.get("inline_data"), dict):
            data = part.get("inlineData") or part.get("inline_data")
            mime, raw = str(data.get("mimeType") or data.get("mime_type") or ""), data.get("data")
            raw = raw.replace("-", "+").replace("_", "/") if isinstance(raw, str) else raw  # the SDKs send URL-safe base64
            if not mime.startswith("image/") or not isinstance(raw, str) or not _is_base64(raw):
                raise InvalidRequest(f"* GenerateContentRequest.contents[{turn}]: only base64 images are supported inline here",
                                     param="contents")  # fmt: skip
            content.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{raw}"}})
        elif isinstance(part.get("fileData") or part.get("file_data"), dict):
            data = part.get("fileData") or part.get("file_data")
            content.append({"type": "image_url", "image_url": {"url": str(data.get("fileUri") or data.get("file_uri") or "")}})
    out = tools
    if content:
        out.append({"role": "user", "content": content[0]["text"] if len(content) == 1 and content[0]["type"] == "text" else content})
    return out


def _answered(response: dict[str, Any], open_calls: list[tuple[str, str]]) -> str:
    own = response.get("id")
    name = str(response.get("name") or "")
    for i, (call_name, call_id) in enumerate(open_calls):
        if (own and call_id == own) or (not own and call_name == name):
            del open_calls[i]
            return call_id
    return str(own or encode_call_id(None))


def _tools(body: dict[str, Any], payload: dict[str, Any]) -> None:
    functions = []
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict):
            continue
        google = next((name for name in GOOGLE_TOOLS if name in tool), None)
        if google:
            raise InvalidRequest(f"tools[{i}].{google} runs at Google and is billed per use, which this gateway cannot meter; "
                                 "use function declarations", param=f"tools[{i}]")  # fmt: skip
        for declaration in tool.get("functionDeclarations") or tool.get("function_declarations") or ():
            schema = declaration.get("parametersJsonSchema") or declaration.get("parameters") or {"type": "object", "properties": {}}
            function = {"name": str(declaration.get("name") or ""), "parameters": _lower_types(schema)}
            if declaration.get("description"):
                function["description"] = declaration["description"]
            functions.append({"type": "function", "function": function})
    if functions:
        payload["tools"] = functions
    config = (body.get("toolConfig") or body.get("tool_config") or {}).get("functionCallingConfig") or {}
    mode = str(config.get("mode") or "").upper()
    allowed = config.get("allowedFunctionNames") or config.get("allowed_function_names") or []
    if mode == "NONE":
        payload["tool_choice"] = "none"
    elif mode == "ANY":
        payload["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}} if len(allowed) == 1 else "required"
    elif mode in ("AUTO", "VALIDATED"):
        payload["tool_choice"] = "auto"


def _lower_types(schema: Any) -> Any:
    """Gemini's OpenAPI ``Schema`` spells types in capitals (``OBJECT``); JSON Schema wants them lower-case."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def _generation(config: dict[str, Any], payload: dict[str, Any]) -> None:
    names = {"temperature": "temperature", "topP": "top_p", "seed": "seed", "presencePenalty": "presence_penalty",
             "frequencyPenalty": "frequency_penalty", "maxOutputTokens": "max_tokens", "stopSequences": "stop",
             "candidateCount": "n"}  # fmt: skip
    for theirs, ours in names.items():
        value = config.get(theirs)
        if value is None:
            value = config.get("".join("_" + c.lower() if c.isupper() else c for c in theirs))
        if value is not None:
            payload[ours] = value
    schema = config.get("responseJsonSchema") or config.get("responseSchema") or config.get("response_json_schema")
    if schema is not None:
        payload["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": _lower_types(schema)}}
    elif (config.get("responseMimeType") or config.get("response_mime_type")) == "application/json":
        payload["response_format"] = {"type": "json_object"}
    thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
    level = str(thinking.get("thinkingLevel") or thinking.get("thinking_level") or "").lower()
    budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
    if level in LEVELS:
        payload["reasoning_effort"] = LEVELS[level]
    elif isinstance(budget, int) and not isinstance(budget, bool):
        payload["reasoning_effort"] = "none" if budget == 0 else "low" if 0 < budget <= 2048 else "medium" if 0 < budget <= 12288 else "high"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return True
