"""The limits the real Gemini API enforces on a request (each a 400 ``INVALID_ARGUMENT``)."""

from __future__ import annotations

from typing import Any

from tokenhub.simulator.gemini.contents import (
    function_calls_of,
    get,
    is_function_response_turn,
    is_gemini_3,
    parts_of,
    role_of,
    snake,
    thinking_config,
)
from tokenhub.simulator.gemini.errors import field_issue, invalid, unknown_name_error
from tokenhub.simulator.gemini.scenario import Scenario
from tokenhub.simulator.gemini.state import FakeGeminiState

SKIP_SIGNATURE = "skip_thought_signature_validator"


# GenerateContentRequest fields (camelCase; snake_case spellings are accepted too).
REQUEST_FIELDS = frozenset(
    {
        "model",
        "contents",
        "tools",
        "toolConfig",
        "safetySettings",
        "systemInstruction",
        "generationConfig",
        "cachedContent",
        "labels",
        "serviceTier",
        "store",
    }
)


# Fields of the OpenAPI-subset Schema proto accepted in `parameters` by the Developer API.
SCHEMA_FIELDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)


def check_request_shape(body: Any) -> list[Any]:
    """Top-level structure; returns ``contents``."""
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    unknown = [k for k in body if k not in REQUEST_FIELDS and not any(snake(f) == k for f in REQUEST_FIELDS)]
    if unknown:
        raise unknown_name_error([("", name) for name in unknown])
    contents = get(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise invalid(field_issue("contents", "contents is not specified"))
    return contents


def validate_contents(contents: list[Any], scenario: Scenario) -> None:
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            raise invalid(f"Invalid JSON payload received. Expected an object at 'contents[{i}]'.")
        if role_of(content) not in ("user", "model"):
            raise invalid("Please use a valid role: user, model.")
        if not parts_of(content):
            raise invalid(field_issue(f"contents[{i}].parts", "contents.parts must not be empty."))
        for j, part in enumerate(parts_of(content)):
            response = get(part, "functionResponse")
            if response is not None and not (isinstance(get(response, "name"), str) and get(response, "name")):
                raise invalid(field_issue(f"contents[{i}].parts[{j}].function_response.name", "Name cannot be empty."))
        if scenario.strict_roles and i and role_of(contents[i - 1]) == role_of(content):
            raise invalid("Please ensure that multiturn requests alternate between user and model.")
    for i, content in enumerate(contents):
        previous = contents[i - 1] if i else None
        if role_of(content) == "model" and function_calls_of(content):
            if previous is None or role_of(previous) != "user":
                raise invalid(
                    "Please ensure that function call turn comes immediately after a user turn or after a function response turn."
                )
        responses = [get(p, "functionResponse") for p in parts_of(content) if get(p, "functionResponse") is not None]
        if responses:
            calls = function_calls_of(previous) if previous is not None and role_of(previous) == "model" else []
            if not calls:
                raise invalid("Please ensure that function response turn comes immediately after a function call turn.")
            if len(responses) != len(calls):
                raise invalid(
                    "Please ensure that the number of function response parts is equal to the number "
                    "of function call parts of the function call turn."
                )
            call_names = {get(get(c, "functionCall"), "name") for c in calls}
            for j, part in enumerate(parts_of(content)):
                name = get(get(part, "functionResponse"), "name")
                if name is not None and name not in call_names:
                    raise invalid(
                        field_issue(
                            f"contents[{i}].parts[{j}].function_response.name",
                            f"Function response name `{name}` does not match any function call of the preceding "
                            "function call turn.",
                        )
                    )


def schema_unknown_keys(schema: Any, location: str) -> list[tuple[str, str]]:
    if not isinstance(schema, dict):
        return []
    found = [(location, k) for k in schema if k not in SCHEMA_FIELDS and not any(snake(f) == k for f in SCHEMA_FIELDS)]
    properties = get(schema, "properties")
    if isinstance(properties, dict):
        for index, value in enumerate(properties.values()):
            found += schema_unknown_keys(value, f"{location}.properties[{index}].value")
    found += schema_unknown_keys(get(schema, "items"), f"{location}.items")
    any_of = get(schema, "anyOf")
    for index, value in enumerate(any_of if isinstance(any_of, list) else []):
        found += schema_unknown_keys(value, f"{location}.any_of[{index}]")
    return found


def schema_semantic_issues(schema: Any, path: str) -> list[str]:
    if not isinstance(schema, dict):
        return []
    issues: list[str] = []
    properties = get(schema, "properties")
    if str(get(schema, "type", "")).upper() == "OBJECT" and not (isinstance(properties, dict) and properties):
        issues.append(field_issue(f"{path}.properties", "should be non-empty for OBJECT type"))
    if isinstance(properties, dict):
        for name, value in properties.items():
            issues += schema_semantic_issues(value, f'{path}.properties["{name}"]')
    issues += schema_semantic_issues(get(schema, "items"), f"{path}.items")
    return issues


def validate_tools(body: dict[str, Any]) -> None:
    tools = get(body, "tools")
    unknown: list[tuple[str, str]] = []
    issues: list[str] = []
    for t, tool in enumerate(tools if isinstance(tools, list) else []):
        declarations = get(tool, "functionDeclarations")
        for d, declaration in enumerate(declarations if isinstance(declarations, list) else []):
            parameters = get(declaration, "parameters")
            if parameters is None:
                continue  # no parameters, or parametersJsonSchema (JSON Schema, accepted as-is)
            location = f"tools[{t}].function_declarations[{d}].parameters"
            unknown += schema_unknown_keys(parameters, location)
            issues += schema_semantic_issues(parameters, location)
    if unknown:
        raise unknown_name_error(unknown)
    if issues:
        raise invalid("".join(issues))


def validate_generation_config(body: dict[str, Any]) -> None:
    config = thinking_config(body)
    if get(config, "thinkingBudget") is not None and get(config, "thinkingLevel") is not None:
        raise invalid("You can only set only one of thinking budget and thinking level.")


def current_turn_start(contents: list[Any]) -> int:
    for i in range(len(contents) - 1, -1, -1):
        if role_of(contents[i]) == "user" and not is_function_response_turn(contents[i]):
            return i
    return 0


def normalize_signature(value: Any) -> str:
    """Proto ``bytes`` JSON accepts standard and URL-safe base64, padded or not (the SDK re-encodes)."""
    return str(value).replace("-", "+").replace("_", "/").rstrip("=")


def validate_thought_signatures(contents: list[Any], model: str, state: FakeGeminiState) -> None:
    if not is_gemini_3(model):
        return
    for i in range(current_turn_start(contents), len(contents)):
        content = contents[i]
        calls = function_calls_of(content) if role_of(content) == "model" else []
        if not calls:
            continue
        signature = get(calls[0], "thoughtSignature")
        if not signature:
            name = get(get(calls[0], "functionCall"), "name")
            raise invalid(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools "
                "to work correctly, and missing thought_signature may lead to degraded model performance. "
                f"Additional data, function call `default_api:{name}` , position {i + 1}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
        issued = {normalize_signature(s) for s in state.signatures}
        for call in calls:
            value = get(call, "thoughtSignature")
            if value and value != SKIP_SIGNATURE and normalize_signature(value) not in issued:
                raise invalid("Corrupted thought signature.")
