"""The one meter of a chat answer, and the rules that turn what it measured into a charge.

A stream's reader (the upstream adapter's ``StreamReader``) tells the meter what each event says —
usage, finish reason, an error, the end, the text generated, server-tool uses — whichever pipe
carries the bytes to the client. The charge rules live here and nowhere else:

* the upstream's usage when it reported one;
* else an estimate, flagged ``estimated``: the prompt's estimate and the text delivered (about four
  characters a token), with the server-tool uses delivered;
* nothing when the upstream failed before generating anything.

A complete (non-streaming) answer follows the same rules (``completion_charge``).
"""

from __future__ import annotations

from typing import Any, Callable

from tokenhub.billing.cost import usage_cost
from tokenhub.catalog.model import Pricing
from tokenhub.tokens import Usage, estimate_tokens


class StreamMeter:
    """What one upstream stream has said so far (see ``providers.base.Meter``)."""

    __slots__ = ("usage", "finish_reason", "error", "finished", "pieces", "text_later", "tool_uses")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.error: dict[str, Any] | None = None
        self.finished = False
        self.pieces: list[str] = []
        self.text_later: Callable[[], None] | None = None
        self.tool_uses: dict[str, int] = {}

    def tool_use(self, kind: str) -> None:
        self.tool_uses[kind] = self.tool_uses.get(kind, 0) + 1

    def delivered_text(self) -> str:
        """All the text generated so far, to count (what a reader decoded late comes last)."""
        later = self.text_later
        if later is not None:
            self.text_later = None
            later()
        return "".join(self.pieces)

    def delivered_tokens(self) -> int:
        return estimate_tokens(self.delivered_text())

    @property
    def done(self) -> bool:
        """Nothing more worth reading: an error came, or the end and the usage both did."""
        return self.error is not None or (self.finished and self.usage is not None)

    def charge(self, pricing: Pricing, prompt_estimate: Callable[[], int], *, upstream_failed: bool) -> tuple[Usage, int]:
        """The usage to record and its cost in nano-dollars."""
        usage = self.usage
        if usage is None:
            usage = Usage(prompt_estimate(), self.delivered_tokens(), estimated=True, tool_uses=dict(self.tool_uses))
        cost = usage_cost(usage, pricing)
        if upstream_failed and self.usage is None and usage.completion_tokens == 0 and not self.tool_uses:
            cost = 0  # the upstream failed before generating anything: nothing to charge
        return usage, cost


def completion_charge(
    usage: Usage | None, pricing: Pricing, prompt_estimate: Callable[[], int], text: Callable[[], str]
) -> tuple[Usage, int]:
    """A complete answer's usage (its estimate when the upstream gave none) and its cost."""
    if usage is None:
        usage = Usage(prompt_estimate(), estimate_tokens(text()), estimated=True)
    return usage, usage_cost(usage, pricing)
