"""What the fake reads from a request: its turns, parts, text, prompt tokens and directives' text."""

from __future__ import annotations

import json
from typing import Any

DEFAULT_TOOL_NAME = "get_weather"


def snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def get(obj: Any, name: str, default: Any = None) -> Any:
    """Proto-JSON field access: camelCase or snake_case spelling."""
    if not isinstance(obj, dict):
        return default
    if name in obj:
        return obj[name]
    return obj.get(snake(name), default)


def parts_of(content: Any) -> list[Any]:
    parts = get(content, "parts")
    return parts if isinstance(parts, list) else []


def role_of(content: Any) -> str:
    role = get(content, "role")
    return "user" if role in (None, "") else role


def is_function_response_turn(content: Any) -> bool:
    parts = parts_of(content)
    return bool(parts) and all(get(p, "functionResponse") is not None for p in parts)


def function_calls_of(content: Any) -> list[dict[str, Any]]:
    return [p for p in parts_of(content) if isinstance(get(p, "functionCall"), dict)]


def words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    return len(json.dumps(value, separators=(",", ":")).split()) if value is not None else 0


def part_tokens(part: Any) -> int:
    if not isinstance(part, dict):
        return 0
    tokens = words(get(part, "text")) if isinstance(get(part, "text"), str) else 0
    for key, payload in (("functionCall", "args"), ("functionResponse", "response")):
        value = get(part, key)
        if isinstance(value, dict):
            tokens += 1 + words(get(value, payload))
    return tokens


def count_prompt_tokens(body: dict[str, Any]) -> int:
    total = sum(part_tokens(p) for p in parts_of(get(body, "systemInstruction")))
    contents = get(body, "contents")
    for content in contents if isinstance(contents, list) else []:
        total += sum(part_tokens(p) for p in parts_of(content))
    return total


def content_text(content: Any) -> str:
    return " ".join(t for t in (get(p, "text") for p in parts_of(content)) if isinstance(t, str))


def directive_text(contents: list[Any]) -> str:
    """The text of the last user content (empty when it holds only function responses)."""
    for content in reversed(contents):
        if role_of(content) == "user":
            return content_text(content)
    return ""


def declared_function_name(body: dict[str, Any]) -> str:
    tools = get(body, "tools")
    for tool in tools if isinstance(tools, list) else []:
        declarations = get(tool, "functionDeclarations")
        if isinstance(declarations, list) and declarations and isinstance(get(declarations[0], "name"), str):
            return get(declarations[0], "name")
    return DEFAULT_TOOL_NAME


def thinking_config(body: dict[str, Any]) -> dict[str, Any]:
    config = get(get(body, "generationConfig", {}), "thinkingConfig")
    return config if isinstance(config, dict) else {}


def is_gemini_3(model: str) -> bool:
    return model.startswith("gemini-3")
