"""Which channel serves a request."""

from __future__ import annotations

import random
from collections.abc import Container

from tokenhub.catalog.model import Model
from tokenhub.directory import Route
from tokenhub.errors import ServiceUnavailable
from tokenhub.providers.adapters import CHAT_ADAPTERS


def pick_route(routes: list[Route], model: Model, protocols: Container[str] = CHAT_ADAPTERS) -> Route:
    """The highest-priority channels whose protocol can serve the request; weighted random among them."""
    served = [r for r in routes if r.channel.protocol in protocols]
    if not served:
        if routes:
            raise ServiceUnavailable(
                f"'{model.id}' is served by a {routes[0].channel.provider} channel, and this gateway version does not relay "
                f"that provider's protocol yet",
                code="protocol_not_served",
            )
        raise ServiceUnavailable(
            f"no channel serves '{model.id}' right now; the operator must add one (tokenhub channel add ...)",
            code="no_channel",
        )
    top = served[0].channel.priority
    candidates = [r for r in served if r.channel.priority == top]
    if len(candidates) == 1:
        return candidates[0]
    return random.choices(candidates, weights=[r.channel.weight for r in candidates])[0]
