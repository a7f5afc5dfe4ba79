"""Prometheus metrics, one registry per app (two gateways in one process do not share counters).

prometheus_client's ``__init__`` loads its exposition's HTTP and WSGI servers and the default registry's
collectors (0.65 MB of an idle gateway); the gateway uses its metric types and its text format only, so
the package is taken without its ``__init__`` (``tokenhub.partial_import``) and the text format loads
with the first scrape.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from itertools import accumulate
from typing import Any

from tokenhub.partial_import import register_unexecuted

register_unexecuted("prometheus_client")

from prometheus_client.metrics import Counter, Gauge  # noqa: E402
from prometheus_client.registry import CollectorRegistry  # noqa: E402
from prometheus_client.utils import floatToGoString  # noqa: E402

from tokenhub.billing.ledger import Charge, Settlement  # noqa: E402
from tokenhub.billing.ledger_store import KnownFigures  # noqa: E402

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BREAKER_VALUES = {"closed": 0, "cooling_down": 1, "half_open": 1, "open": 2, "misconfigured": 3}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.upstream_errors = Counter("tokenhub_upstream_errors", "Upstream failures, by channel and kind.",
                                       ["channel", "kind"], registry=r)
        self.breaker = Gauge("tokenhub_channel_breaker_state",
                             "Channel circuit breaker: 0 closed, 1 cooling down or half-open, 2 open, 3 misconfigured.",
                             ["channel"], registry=r)
        self.limited = Counter("tokenhub_limited", "Requests refused by a limit of the key or account, by scope and limit.",
                               ["scope", "limit"], registry=r)
        self.overage = Counter("tokenhub_overage_nanodollars",
                               "Usage cost an upstream reported beyond what the account could pay (not charged).", registry=r)
        self.overage_requests = Counter("tokenhub_overage_requests", "Requests charged less than their usage cost.", registry=r)
        self.holds = _Holds()
        self._settled = _Settled(self.holds)
        r.register(self._settled)

    def watch_ledger(self, known: KnownFigures) -> None:
        """Count the ledger's groups that committed on figures the process knew (read at each scrape)."""
        self.registry.register(_LedgerChecks(known))

    def overcharged(self, charge: Charge) -> None:
        self.overage.inc(charge.overage)
        self.overage_requests.inc()

    def settled(self, endpoint: str, model: str, settlement: Settlement) -> None:
        self._settled.add(endpoint, model, settlement)

    def render(self) -> bytes:
        from prometheus_client.exposition import generate_latest

        return generate_latest(self.registry)


class _Holds:
    """Credit holds of requests in flight in this process: a plain number, read when scraped."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def inc(self) -> None:
        self.count += 1

    def dec(self) -> None:
        self.count -= 1


class _Settled:
    """What settled requests said (requests by outcome, latencies, tokens, cost), summed in plain numbers
    on the request path and made Prometheus families when scraped. prometheus_client's own counters and
    histograms take a lock and three to six calls for each increment: eleven of them a request were ≈4 % of
    a request's instructions (callgrind, bench/README.md session 16). Everything here runs on the event
    loop's thread, the scrape included: nothing to lock."""

    def __init__(self, holds: _Holds) -> None:
        self._holds = holds
        self._series: dict[tuple[str, str], _Series] = {}  # by (endpoint, model)
        self._models: dict[str, _ModelTotals] = {}  # tokens and cost are by model
        self._timings: dict[str, tuple[_Histogram, _Histogram]] = {}  # latency and first byte are by endpoint

    def add(self, endpoint: str, model: str, settlement: Settlement) -> None:
        series = self._series.get((endpoint, model))
        if series is None:
            series = self._series[(endpoint, model)] = self._new_series(endpoint, model)
        requests = series.requests
        requests[settlement.status] = requests.get(settlement.status, 0) + 1
        if settlement.latency_ms is not None:
            series.latency.observe(settlement.latency_ms / 1000)
        if settlement.ttfb_ms is not None:
            series.ttfb.observe(settlement.ttfb_ms / 1000)
        u, totals = settlement.usage, series.totals
        totals.prompt += u.prompt_tokens
        totals.completion += u.completion_tokens
        totals.cached += u.cached_tokens
        totals.reasoning += u.reasoning_tokens
        totals.cost += settlement.cost

    def _new_series(self, endpoint: str, model: str) -> _Series:
        """A pair's series: its own request counts, its model's totals and its endpoint's timings, shared."""
        totals = self._models.get(model) or self._models.setdefault(model, _ModelTotals())
        latency, ttfb = self._timings.get(endpoint) or self._timings.setdefault(endpoint, (_Histogram(), _Histogram()))
        return _Series(totals, latency, ttfb)

    def describe(self) -> list[Any]:
        return list(self.collect())

    def collect(self) -> Any:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        requests = CounterMetricFamily("tokenhub_requests", "Requests relayed, by endpoint, model and outcome.",
                                       labels=["endpoint", "model", "status"])  # fmt: skip
        latency = HistogramMetricFamily("tokenhub_request_duration_seconds", "Time from request to the end of the answer.",
                                        labels=["endpoint"])  # fmt: skip
        ttfb = HistogramMetricFamily("tokenhub_time_to_first_byte_seconds", "Time from request to the first byte of the answer.",
                                     labels=["endpoint"])  # fmt: skip
        for (endpoint, model), series in self._series.items():
            for status, count in series.requests.items():
                requests.add_metric([endpoint, model, status], count, created=series.created)
        for endpoint, (lat, first) in self._timings.items():
            lat.add_to(latency, endpoint)
            first.add_to(ttfb, endpoint)
        tokens = CounterMetricFamily("tokenhub_tokens", "Tokens billed, by model and kind.", labels=["model", "kind"])
        cost = CounterMetricFamily("tokenhub_cost_nanodollars", "What customers were charged, in nano-dollars.", labels=["model"])
        for model, t in self._models.items():
            for kind in ("prompt", "completion", "cached", "reasoning"):
                tokens.add_metric([model, kind], getattr(t, kind), created=t.created)
            cost.add_metric([model], t.cost, created=t.created)
        holds = GaugeMetricFamily("tokenhub_holds_outstanding", "Credit holds of requests in flight in this process.")
        holds.add_metric([], self._holds.count)
        yield from (requests, latency, ttfb, tokens, cost, holds)


class _ModelTotals:
    __slots__ = ("prompt", "completion", "cached", "reasoning", "cost", "created")

    def __init__(self) -> None:
        self.prompt = self.completion = self.cached = self.reasoning = self.cost = 0
        self.created = time.time()


class _Histogram:
    """Counts of observations at or below each of ``LATENCY_BUCKETS`` (one more for the rest), and their sum."""

    __slots__ = ("counts", "sum", "created")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, value)] += 1
        self.sum += value

    def add_to(self, family: Any, label: str) -> None:
        cumulative = list(accumulate(self.counts))
        bounds = [*(floatToGoString(b) for b in LATENCY_BUCKETS), "+Inf"]
        family.add_metric([label], list(zip(bounds, cumulative)), self.sum)
        family.add_sample(family.name + "_created", {"endpoint": label}, self.created)


class _Series:
    """What one (endpoint, model) pair's settlements add to."""

    __slots__ = ("requests", "latency", "ttfb", "totals", "created")

    def __init__(self, totals: _ModelTotals, latency: _Histogram, ttfb: _Histogram) -> None:
        self.requests: dict[str, int] = {}  # by status
        self.latency = latency
        self.ttfb = ttfb
        self.totals = totals
        self.created = time.time()


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
            "Ledger groups planned on the figures this process knew (PostgreSQL), by what the check found: passed (the "
            "account and key had the room the group needs; committed in one round trip) or failed (locked and read again).",
            labels=["result"],
        )
        family.add_metric(["passed"], self._known.hits)
        family.add_metric(["failed"], self._known.misses)
        yield family

