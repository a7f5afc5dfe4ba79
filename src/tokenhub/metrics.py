"""Prometheus metrics, one registry per app (two gateways in one process do not share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tokenhub.billing.ledger import Charge, Settlement

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

    def overcharged(self, charge: Charge) -> None:
        self.overage.inc(charge.overage)
        self.overage_requests.inc()

    def settled(self, endpoint: str, model: str, settlement: Settlement) -> None:
        self.requests.labels(endpoint, model, settlement.status).inc()
        if settlement.latency_ms is not None:
            self.latency.labels(endpoint).observe(settlement.latency_ms / 1000)
        if settlement.ttfb_ms is not None:
            self.ttfb.labels(endpoint).observe(settlement.ttfb_ms / 1000)
        u = settlement.usage
        for kind, value in (("prompt", u.prompt_tokens), ("completion", u.completion_tokens), ("cached", u.cached_tokens),
                            ("reasoning", u.reasoning_tokens)):
            if value:
                self.tokens.labels(model, kind).inc(value)
        if settlement.cost:
            self.cost.labels(model).inc(settlement.cost)

    def render(self) -> bytes:
        return generate_latest(self.registry)
