"""Prometheus metrics, one registry per app (two gateways in one process do not share counters).

prometheus_client's ``__init__`` loads its exposition's HTTP and WSGI servers and the default registry's
collectors (0.65 MB of an idle gateway); the gateway uses its metric types and its text format only, so
the package is taken without its ``__init__`` (``tokenhub.partial_import``) and the text format loads
with the first scrape.
"""

from __future__ import annotations

from typing import Any

from tokenhub.partial_import import register_unexecuted

register_unexecuted("prometheus_client")

from prometheus_client.metrics import Counter, Gauge, Histogram  # noqa: E402
from prometheus_client.registry import CollectorRegistry  # noqa: E402

from tokenhub.billing.ledger import Charge, Settlement  # noqa: E402
from tokenhub.billing.ledger_store import KnownFigures  # noqa: E402

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BREAKER_VALUES = {"closed": 0, "cooling_down": 1, "half_open": 1, "open": 2, "misconfigured": 3}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tokenhub_requests", "Requests relayed, by endpoint, model and outcome.",
                                ["endpoint", "model", "status"], registry=r)
        self.latency = Histogram("tokenhub_request_duration_seconds", "Time from request to the end of the answer.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttfb = Histogram("tokenhub_time_to_first_byte_seconds", "Time from request to the first byte of the answer.",
                              ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("tokenhub_tokens", "Tokens billed, by model and kind.", ["model", "kind"], registry=r)
        self.cost = Counter("tokenhub_cost_nanodollars", "What customers were charged, in nano-dollars.", ["model"], registry=r)
        self.upstream_errors = Counter("tokenhub_upstream_errors", "Upstream failures, by channel and kind.",
                                       ["channel", "kind"], registry=r)
        self.breaker = Gauge("tokenhub_channel_breaker_state",
                             "Channel circuit breaker: 0 closed, 1 cooling down or half-open, 2 open, 3 misconfigured.",
                             ["channel"], registry=r)
        self.limited = Counter("tokenhub_limited", "Requests refused by a limit of the key or account, by scope and limit.",
                               ["scope", "limit"], registry=r)
        self.holds = Gauge("tokenhub_holds_outstanding", "Credit holds of requests in flight in this process.", registry=r)
        self.overage = Counter("tokenhub_overage_nanodollars",
                               "Usage cost an upstream reported beyond what the account could pay (not charged).", registry=r)
        self.overage_requests = Counter("tokenhub_overage_requests", "Requests charged less than their usage cost.", registry=r)
        self._series: dict[tuple[str, str], _Series] = {}

    def watch_ledger(self, known: KnownFigures) -> None:
        """Count the ledger's groups that committed on figures the process knew (read at each scrape)."""
        self.registry.register(_LedgerChecks(known))

    def overcharged(self, charge: Charge) -> None:
        self.overage.inc(charge.overage)
        self.overage_requests.inc()

    def settled(self, endpoint: str, model: str, settlement: Settlement) -> None:
        series = self._series.get((endpoint, model))
        if series is None:  # labels() validates and locks on every call: look each series up once
            series = self._series[(endpoint, model)] = _Series(self, endpoint, model)
        counter = series.requests.get(settlement.status)
        if counter is None:
            counter = series.requests[settlement.status] = self.requests.labels(endpoint, model, settlement.status)
        counter.inc()
        if settlement.latency_ms is not None:
            series.latency.observe(settlement.latency_ms / 1000)
        if settlement.ttfb_ms is not None:
            series.ttfb.observe(settlement.ttfb_ms / 1000)
        u = settlement.usage
        if u.prompt_tokens:
            series.prompt.inc(u.prompt_tokens)
        if u.completion_tokens:
            series.completion.inc(u.completion_tokens)
        if u.cached_tokens:
            series.cached.inc(u.cached_tokens)
        if u.reasoning_tokens:
            series.reasoning.inc(u.reasoning_tokens)
        if settlement.cost:
            series.cost.inc(settlement.cost)

    def render(self) -> bytes:
        from prometheus_client.exposition import generate_latest

        return generate_latest(self.registry)


class _Series:
    """The labelled series one (endpoint, model) pair writes to when its requests settle."""

    __slots__ = ("requests", "latency", "ttfb", "prompt", "completion", "cached", "reasoning", "cost")

    def __init__(self, metrics: Metrics, endpoint: str, model: str) -> None:
        self.requests: dict[str, Any] = {}  # by status
        self.latency = metrics.latency.labels(endpoint)
        self.ttfb = metrics.ttfb.labels(endpoint)
        self.prompt = metrics.tokens.labels(model, "prompt")
        self.completion = metrics.tokens.labels(model, "completion")
        self.cached = metrics.tokens.labels(model, "cached")
        self.reasoning = metrics.tokens.labels(model, "reasoning")
        self.cost = metrics.cost.labels(model)


class _LedgerChecks:
    """The ledger's checked groups (PostgreSQL: ``KnownFigures``), counted by the store itself and read
    when scraped: nothing on the request path."""

    def __init__(self, known: KnownFigures) -> None:
        self._known = known

    def describe(self) -> list[Any]:
        return list(self.collect())

    def collect(self) -> Any:
        from prometheus_client.metrics_core import CounterMetricFamily

        family = CounterMetricFamily(
            "tokenhub_ledger_checked_groups",
            "Ledger groups planned on the figures this process knew (PostgreSQL), by what the check found: unchanged "
            "(committed in one round trip) or changed (locked and read again).",
            labels=["result"],
        )
        family.add_metric(["unchanged"], self._known.hits)
        family.add_metric(["changed"], self._known.misses)
        yield family

