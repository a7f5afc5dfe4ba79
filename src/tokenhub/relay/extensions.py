"""OpenRouter's request extensions, understood here and never forwarded.

Code written for OpenRouter sends fields no upstream knows (the real OpenAI API answers an unknown
parameter with a 400). They are taken out of the chat payload before anything else reads it, and
become the gateway's own controls:

* ``models: [...]`` — models to try in order after ``model`` when one fails before answering
  (``ChatCall.fallback_models``; the relay bills and reports the model that answered);
* ``provider: {order, only, ignore, allow_fallbacks, sort}`` — which channels serve the request
  (``ProviderPreferences``, applied by relay/routing.py ``prefer``, sorting by the speeds
  relay/health.py observes); its other keys (data
  collection, quantizations, price ceilings, ...) describe OpenRouter's marketplace and are ignored;
* ``reasoning: {effort | max_tokens, exclude, enabled}`` — the canonical ``reasoning_effort``, which
  every adapter maps onto its protocol's own control (OpenAI ``reasoning_effort``, Anthropic
  ``thinking``/``output_config.effort``, Gemini ``thinkingConfig``); ``max_tokens`` picks the effort
  whose budget is closest (up to 2,048 low, up to 12,288 medium, above that high — Google's own
  OpenAI layer maps low/medium/high to 1K/8K/24K); ``exclude`` leaves the reasoning out of the
  answer (it is generated and billed all the same);
* ``usage: {include: true}`` — the usage chunk of a stream (``stream_options.include_usage``);
* ``transforms``, ``route``, ``preset`` — OpenRouter's own prompt handling, dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from tokenhub.errors import InvalidRequest

DROPPED: Final = ("transforms", "route", "preset")
EXTENSION_FIELDS: Final = ("models", "provider", "reasoning", "usage", *DROPPED)
MAX_MODELS: Final = 8
SORTS: Final = ("price", "latency", "throughput")
EFFORT_BY_BUDGET: Final = ((2048, "low"), (12288, "medium"))


@dataclass(frozen=True)
class ProviderPreferences:
    """OpenRouter's ``provider`` object: names match a channel's vendor (``deepseek``) or its own name."""

    order: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    sort: str | None = None


@dataclass(frozen=True)
class Extensions:
    fallback_models: tuple[str, ...] = ()
    provider: ProviderPreferences | None = None
    exclude_reasoning: bool = False


NONE: Final = Extensions()


def take_extensions(payload: dict[str, Any]) -> tuple[dict[str, Any], Extensions]:
    """``payload`` without OpenRouter's fields (the same object when it has none), and what they asked for."""
    if not any(name in payload for name in EXTENSION_FIELDS):
        return payload, NONE
    body = {k: v for k, v in payload.items() if k not in EXTENSION_FIELDS}
    exclude = _reasoning(payload.get("reasoning"), body)
    usage = payload.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise InvalidRequest("'usage' must be an object such as {\"include\": true}", param="usage")
    if usage and usage.get("include") is True and body.get("stream") is True:  # a whole answer always has its usage
        options = body.get("stream_options")
        body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    return body, Extensions(_models(payload.get("models")), _provider(payload.get("provider")), exclude)


def _models(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(m, str) and m.strip() and len(m) <= 200 for m in value):
        raise InvalidRequest("'models' must be a list of model ids", param="models")
    if len(value) > MAX_MODELS:
        raise InvalidRequest(f"'models' may list at most {MAX_MODELS} models", param="models")
    return tuple(m.strip() for m in value)


def _names(prefs: dict[str, Any], field: str) -> tuple[str, ...]:
    value = prefs.get(field)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(n, str) and n.strip() for n in value):
        raise InvalidRequest(f"'provider.{field}' must be a list of provider names", param=f"provider.{field}")
    return tuple(n.strip().lower() for n in value)


def _provider(value: Any) -> ProviderPreferences | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest("'provider' must be an object", param="provider")
    allow = value.get("allow_fallbacks", True)
    if not isinstance(allow, bool):
        raise InvalidRequest("'provider.allow_fallbacks' must be true or false", param="provider.allow_fallbacks")
    sort = value.get("sort")
    if isinstance(sort, dict):  # OpenRouter's newer {"by": ..., "partition": ...} form
        sort = sort.get("by")
    if sort is not None and sort not in SORTS:
        raise InvalidRequest(f"'provider.sort' must be one of {', '.join(SORTS)}", param="provider.sort")
    return ProviderPreferences(_names(value, "order"), _names(value, "only"), _names(value, "ignore"), allow, sort)


def _reasoning(value: Any, body: dict[str, Any]) -> bool:
    """Sets the canonical ``reasoning_effort`` on ``body`` (a client's own one wins); whether to exclude it from the answer."""
    if value is None:
        return False
    if not isinstance(value, dict):
        raise InvalidRequest("'reasoning' must be an object such as {\"effort\": \"high\"}", param="reasoning")
    effort = value.get("effort")
    budget = value.get("max_tokens")
    if effort is not None and not isinstance(effort, str):
        raise InvalidRequest("'reasoning.effort' must be a string", param="reasoning.effort")
    if budget is not None:
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
            raise InvalidRequest("'reasoning.max_tokens' must be a non-negative integer", param="reasoning.max_tokens")
        effort = effort or ("none" if budget == 0 else next((e for limit, e in EFFORT_BY_BUDGET if budget <= limit), "high"))
    enabled = value.get("enabled")
    if enabled is False:
        effort = "none"
    elif effort is None and enabled is True:
        effort = "medium"
    if effort is not None and "reasoning_effort" not in body:
        body["reasoning_effort"] = effort
    exclude = value.get("exclude", False)
    if not isinstance(exclude, bool):
        raise InvalidRequest("'reasoning.exclude' must be true or false", param="reasoning.exclude")
    return exclude
