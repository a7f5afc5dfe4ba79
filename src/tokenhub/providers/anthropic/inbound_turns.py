"""The turns of a client's Messages request, block by block, as OpenAI chat messages and parts (see
:mod:`.inbound` for the rules).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from tokenhub.errors import InvalidRequest
from tokenhub.providers.anthropic.wire import REASONING_FORMAT


def _text_of(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text: Field required (a string)", param="messages")
    return text


def user_turn(blocks: list[dict[str, Any]], where: str, sink: list[Untranslatable] | None) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    attachments: list[dict[str, Any]] = []  # media returned by tools: OpenAI tool messages are text-only
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content.{j}"
        kind = block["type"]
        if kind == "tool_result":
            message, media = _tool_result(block, at, sink)
            tool_messages.append(message)
            attachments += media
        elif kind in ("thinking", "redacted_thinking", "tool_use") or kind in SERVER_BLOCKS:
            raise InvalidRequest(f"{at}: a {kind} block is not allowed in a user message", param="messages")
        else:
            parts += _content_parts(block, at, sink)
    parts = attachments + [p for p in parts if p["type"] != "text" or p["text"].strip()]
    out = list(tool_messages)
    if parts:
        if all(p["type"] == "text" for p in parts):
            out.append({"role": "user", "content": "\n\n".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _content_parts(block: dict[str, Any], where: str, sink: list[Untranslatable] | None) -> list[dict[str, Any]]:
    """OpenAI user content parts for a text, image, document or search_result block."""
    kind = block["type"]
    if kind == "text":
        return [{"type": "text", "text": _text_of(block, where)}]
    if kind == "image":
        return [_image_part(block, where, sink)]
    if kind == "document":
        return _document_parts(block, where, sink)
    if kind == "search_result":
        inner = block.get("content")
        if not isinstance(inner, list):
            raise InvalidRequest(f"{where}.content: Field required (text blocks)", param="messages")
        texts = [_text_of(b, f"{where}.content.{k}") for k, b in enumerate(inner) if isinstance(b, dict)]
        head = " — ".join(str(block[k]) for k in ("title", "source") if isinstance(block.get(k), str) and block[k])
        return [{"type": "text", "text": "\n".join([head, *texts] if head else texts)}]
    raise InvalidRequest(f"{where}.type: unsupported content block type {kind!r}", param="messages")


def _image_part(block: dict[str, Any], where: str, sink: list[Untranslatable] | None) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source: Field required", param="messages")
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not media_type.startswith("image/") or not isinstance(data, str) or not data:
            raise InvalidRequest(f"{where}.source: base64 images need an image media_type and data", param="messages")
        return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url:
            raise InvalidRequest(f"{where}.source.url: Field required", param="messages")
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "file":
        untranslatable(sink, f"{where}.source: Files API images (file_id) are not supported for this model", "messages")
        return {"type": "text", "text": "[image from the Files API omitted]"}
    raise InvalidRequest(f"{where}.source.type: must be base64 or url", param="messages")


def _document_parts(block: dict[str, Any], where: str, sink: list[Untranslatable] | None) -> list[dict[str, Any]]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source: Field required", param="messages")
    kind = source.get("type")
    title = block.get("title") if isinstance(block.get("title"), str) else None
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if media_type != "application/pdf" or not isinstance(data, str) or not data:
            raise InvalidRequest(f"{where}.source: base64 documents must be application/pdf with data", param="messages")
        filename = title if title else "document.pdf"
        return [{"type": "file", "file": {"filename": filename, "file_data": f"data:application/pdf;base64,{data}"}}]
    if kind == "text":
        data = source.get("data")
        if not isinstance(data, str):
            raise InvalidRequest(f"{where}.source.data: Field required (a string)", param="messages")
        return [{"type": "text", "text": f"{title}\n\n{data}" if title else data}]
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [{"type": "text", "text": inner}]
        if not isinstance(inner, list):
            raise InvalidRequest(f"{where}.source.content: must be a string or a list of blocks", param="messages")
        parts: list[dict[str, Any]] = []
        for k, sub in enumerate(inner):
            at = f"{where}.source.content.{k}"
            if not isinstance(sub, dict) or sub.get("type") not in ("text", "image"):
                raise InvalidRequest(f"{at}: only text and image blocks are allowed here", param="messages")
            parts += _content_parts(sub, at, sink)
        return parts
    if kind == "url":
        untranslatable(
            sink, f"{where}.source: document URLs are not supported for this model; send the PDF as base64", "messages"
        )
        return [{"type": "text", "text": "[document omitted]"}]
    if kind == "file":
        untranslatable(sink, f"{where}.source: Files API documents (file_id) are not supported for this model", "messages")
        return [{"type": "text", "text": "[document from the Files API omitted]"}]
    raise InvalidRequest(f"{where}.source.type: must be base64, text, content or url", param="messages")


def _tool_result(
    block: dict[str, Any], where: str, sink: list[Untranslatable] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.tool_use_id: Field required", param="messages")
    content = block.get("content")
    texts: list[str] = []
    media: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, sub in enumerate(content):
            at = f"{where}.content.{k}"
            if not isinstance(sub, dict) or not isinstance(sub.get("type"), str):
                raise InvalidRequest(f"{at}: a content block must be an object with a type", param="messages")
            if sub["type"] == "tool_reference":  # tool search bookkeeping, nothing for another model
                continue
            if sub["type"] not in ("text", "image", "document", "search_result"):
                raise InvalidRequest(f"{at}.type: {sub['type']!r} is not allowed in a tool_result", param="messages")
            for part in _content_parts(sub, at, sink):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    media.append(part)
    elif content is not None:
        raise InvalidRequest(f"{where}.content: must be a string or a list of blocks", param="messages")
    text = "\n".join(t for t in texts if t)
    if block.get("is_error") is True:
        text = f"{TOOL_ERROR_PREFIX}{text}" if text else TOOL_ERROR_PREFIX.rstrip(": ")
    return {"role": "tool", "tool_call_id": call_id, "content": text}, media


def assistant_turn(blocks: list[dict[str, Any]], where: str, names: dict[str, str]) -> dict[str, Any] | None:
    texts: list[str] = []
    thinking: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content.{j}"
        kind = block["type"]
        if kind == "text":
            text = _text_of(block, at)
            if text.strip():
                texts.append(text)
        elif kind == "tool_use":
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
                raise InvalidRequest(f"{at}: tool_use needs an id and a name", param="messages")
            if not isinstance(arguments, dict):
                raise InvalidRequest(f"{at}.input: must be an object", param="messages")
            function = {"name": names.get(name, upstream_tool_name(name)), "arguments": orjson.dumps(arguments).decode()}
            calls.append({"id": call_id, "type": "function", "function": function})
        elif kind == "thinking":
            text, signature = block.get("thinking"), block.get("signature")
            if not isinstance(text, str) or not isinstance(signature, str):
                raise InvalidRequest(f"{at}: thinking needs thinking and signature strings", param="messages")
            thinking.append(text)
            if signature:
                entry = {"type": "reasoning.text", "text": text, "signature": signature, "format": REASONING_FORMAT}
                details.append({**entry, "index": len(details)})
        elif kind == "redacted_thinking":
            data = block.get("data")
            if not isinstance(data, str) or not data:
                raise InvalidRequest(f"{at}.data: Field required", param="messages")
            details.append({"type": "reasoning.encrypted", "data": data, "format": REASONING_FORMAT, "index": len(details)})
        elif kind in SERVER_BLOCKS:
            continue
        elif kind in ("image", "document", "tool_result", "search_result"):
            raise InvalidRequest(f"{at}: a {kind} block is not allowed in an assistant message", param="messages")
        else:
            raise InvalidRequest(f"{at}.type: unsupported content block type {kind!r}", param="messages")
    if not texts and not calls and not thinking and not details:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) if texts else (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if details:
        message["reasoning_details"] = details
    return message


OPENAI_TOOL_NAME_MAX = 64


TOOL_ERROR_PREFIX = "Error: "


# Anthropic server-tool content blocks: meaningful only to Anthropic, dropped for other upstreams.
SERVER_BLOCKS = frozenset(
    {
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
        "mcp_tool_use",
        "mcp_tool_result",
    }
)


class Untranslatable(InvalidRequest):
    """Valid for Anthropic, impossible to hand to another upstream: a Files API ``file`` source, a
    PDF ``url`` source, ``max_tokens: 0`` (cache pre-warm). With ``lenient=True`` these are collected
    in ``Translation.unsupported`` (the part becomes a placeholder text, max_tokens 1) instead of
    raised, so a request bound for a native Anthropic upstream is not refused by the translation."""

    code = "unsupported_for_model"


def untranslatable(sink: list[Untranslatable] | None, message: str, param: str) -> None:
    err = Untranslatable(message, param=param)
    if sink is None:
        raise err
    sink.append(err)


def upstream_tool_name(name: str) -> str:
    """A tool name within OpenAI's 64 characters: longer ones keep 55 and add a hash of the whole."""
    if len(name) <= OPENAI_TOOL_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: OPENAI_TOOL_NAME_MAX - 9]}_{digest}"
