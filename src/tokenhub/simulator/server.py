"""The operator simulator: every fake upstream on one port, with operator-level faults (aiohttp).

``tokenhub simulate`` serves :func:`create_app`.  Each fake of :mod:`tokenhub.simulator`
is mounted as a sub-application under its own prefix, so one process stands in for
every supported provider:

==============  ==============================  ==========================================
prefix          channel base URL                fake
==============  ==============================  ==========================================
``/openai``     ``http://HOST:PORT/openai/v1``  OpenAI Chat Completions (and every
                                                OpenAI-compatible vendor: xai, deepseek …)
``/anthropic``  ``http://HOST:PORT/anthropic``  Anthropic Messages
``/gemini``     ``http://HOST:PORT/gemini``     Google Gemini (``/v1beta/models/…``)
``/ark``        ``…/ark/api/v3``                Volcengine Ark (Seedance tasks, Seedream)
``/kling``      ``http://HOST:PORT/kling``      Kling video tasks (JWT from ``AK:SK``)
``/dashscope``  ``…/dashscope/api/v1``          DashScope Wan video tasks
==============  ==============================  ==========================================

Everything the fakes document keeps working under the prefix, ``#fake:`` directives
included; the media URLs the video fakes hand out carry the prefix too
(``common.mounting.MOUNT_PREFIX_KEY``).  The chat fakes accept the catalog's models besides
their own defaults.

Operator-level faults (``SimulatorConfig``), applied by a middleware on each sub-app to
every request, whatever its prompt says:

* ``latency``: seconds to wait before handling any request (so before its first byte);
* ``token_rate``: tokens per second of the chat fakes' streams (``token_delay`` =
  1 / rate between stream events);
* ``error_rates``: ``((status, fraction), …)``.  Each API request (not the media
  downloads, not an unknown route) draws ``u = rng.random()``; the first entry whose
  running sum of fractions exceeds ``u`` answers with that status, in the fake's own
  error format (its ``status_error`` helper: the same body as ``#fake:status=CODE``);
* ``faults``: ``((name, fraction), …)`` for the generation requests of the chat fakes
  (OpenAI chat completions, Anthropic messages, Gemini generate/streamGenerateContent)
  that did not draw an error: a second draw picks at most one fault the same way and
  injects it as the fake's own directive (``common.directives.EXTRA_DIRECTIVES``):

  ``reset``     some output, then the TCP connection is aborted (non-stream: no answer)
  ``stall``     the first stream event, then silence with the connection open
                (``#fake:delay=3600``); a non-stream request hangs instead
  ``truncate``  some output, then a clean end without the terminating event
  ``malformed`` an invalid JSON chunk mid-stream (OpenAI fake only; elsewhere no fault)
  ``hang``      no answer at all until the client goes away

* ``keys``: the upstream keys accepted (``None``: any).  Entries ``AK:SK`` are Kling
  credentials (Kling accepts any JWT when there is none); the others are the API keys
  of the other fakes (which accept anything when there is none).
* ``seed``: each sub-app draws from its own ``random.Random(f"{seed}:{name}")``
  (``random.Random()`` when None), so a fixed seed replays the same sequence of
  outcomes for the same sequence of requests to a prefix.

The fakes record requests for tests; here each keeps only its last
``KEEP_REQUESTS`` so a long load test does not grow without bound.  What the
middleware did is counted per sub-app in ``sub[STATS_KEY]`` (``SimulatorStats``:
requests, injected errors by status, injected faults by name) and shown by
``GET /`` next to the base URLs.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import orjson
from aiohttp import web

from tokenhub.catalog.loader import load_shipped
from tokenhub.simulator import anthropic, ark, dashscope, gemini, kling, openai
from tokenhub.simulator.common.directives import EXTRA_DIRECTIVES
from tokenhub.simulator.common.disconnects import ClientGone, sleep_unless_gone
from tokenhub.simulator.common.mounting import MOUNT_PREFIX_KEY, local_path
from tokenhub.vendors import PROVIDERS

__all__ = [
    "FAULTS",
    "KEEP_REQUESTS",
    "MOUNTS",
    "STATS_KEY",
    "SUBAPPS_KEY",
    "SimulatorStats",
    "Mount",
    "SimulatorConfig",
    "base_urls",
    "channel_commands",
    "create_app",
    "parse_error_rates",
    "parse_faults",
]

FAULTS = ("reset", "stall", "truncate", "malformed", "hang")
STALL_SECONDS = 3600
KEEP_REQUESTS = 1000
DEFAULT_KEY = "sk-simulator"
DEFAULT_KLING_KEY = "ak-simulator:sk-simulator"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SimulatorConfig:
    latency: float = 0.0
    token_rate: float | None = None  # tokens per second; None: as fast as possible
    error_rates: tuple[tuple[int, float], ...] = ()
    faults: tuple[tuple[str, float], ...] = ()
    keys: tuple[str, ...] | None = None  # None: accept any key
    seed: int | None = None

    @property
    def api_keys(self) -> set[str] | None:
        plain = {k for k in self.keys or () if ":" not in k}
        return plain or None

    @property
    def kling_credentials(self) -> dict[str, str] | None:
        pairs = dict(k.split(":", 1) for k in self.keys or () if ":" in k)
        return pairs or None

    @property
    def token_delay(self) -> float:
        return 1.0 / self.token_rate if self.token_rate else 0.0


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{what}: expected NAME=FRACTION, got {item!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs


def _fraction(value: str, item: str) -> float:
    try:
        fraction = float(value)
    except ValueError:
        raise ValueError(f"{item}: {value!r} is not a number") from None
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{item}: the fraction must be between 0 and 1")
    return fraction


def _check_total(pairs: Iterable[tuple[Any, float]], what: str) -> None:
    if sum(f for _, f in pairs) > 1.0 + 1e-9:
        raise ValueError(f"{what}: the fractions add up to more than 1")


def parse_error_rates(text: str) -> tuple[tuple[int, float], ...]:
    """``"503=0.1,429=0.05"`` → ``((503, 0.1), (429, 0.05))``; ValueError when malformed."""
    rates: list[tuple[int, float]] = []
    for status, value in _pairs(text, "--error-rate"):
        if not status.isdigit() or not 400 <= int(status) <= 599:
            raise ValueError(f"--error-rate: {status!r} is not an HTTP error status (400-599)")
        rates.append((int(status), _fraction(value, status)))
    _check_total(rates, "--error-rate")
    return tuple(rates)


def parse_faults(text: str) -> tuple[tuple[str, float], ...]:
    """``"reset=0.1,stall=0.05"`` → ``(("reset", 0.1), ("stall", 0.05))``; ValueError when malformed."""
    faults: list[tuple[str, float]] = []
    for name, value in _pairs(text, "--fault"):
        if name not in FAULTS:
            raise ValueError(f"--fault: unknown fault {name!r} (one of {', '.join(FAULTS)})")
        faults.append((name, _fraction(value, name)))
    _check_total(faults, "--fault")
    return tuple(faults)


def _pick(rng: random.Random, table: tuple[tuple[Any, float], ...]) -> Any:
    """One draw: the first entry whose running sum of fractions exceeds it, else None."""
    draw, total = rng.random(), 0.0
    for value, fraction in table:
        total += fraction
        if draw < total:
            return value
    return None


# --------------------------------------------------------------------------- per-protocol adapters


def _json_model(raw: bytes) -> tuple[str, bool]:
    """(model, stream) from a JSON body, tolerating anything."""
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return "unknown", False
    model = body.get("model")
    return (model if isinstance(model, str) else "unknown"), bool(body.get("stream"))


async def _openai_error(request: web.Request, status: int) -> web.StreamResponse:
    model, _ = _json_model(await request.read())
    return openai.status_error(status, model).response()


async def _anthropic_error(request: web.Request, status: int) -> web.StreamResponse:
    model, _ = _json_model(await request.read())
    return anthropic.status_error(status, model).response()


async def _gemini_error(request: web.Request, status: int) -> web.StreamResponse:
    model, method = gemini.split_model_method(request.match_info.get("name", ""))
    version = request.match_info.get("version", "v1beta")
    error = gemini.status_error(status, model, version, method or "generateContent")
    wrap = method == "streamGenerateContent" and request.query.get("alt") != "sse"
    return error.response(wrap_in_array=wrap)


async def _ark_error(request: web.Request, status: int) -> web.StreamResponse:
    raise ark.status_error(status)  # ark_errors (outside) answers it with the request id


async def _kling_error(request: web.Request, status: int) -> web.StreamResponse:
    return kling.status_error(status).response()


async def _dashscope_error(request: web.Request, status: int) -> web.StreamResponse:
    return dashscope.status_error(status).response()


async def _openai_generation(request: web.Request) -> bool | None:
    """None when not a generation request, else whether it streams."""
    if request.method != "POST" or not local_path(request).endswith("/chat/completions"):
        return None
    return _json_model(await request.read())[1]


async def _anthropic_generation(request: web.Request) -> bool | None:
    if request.method != "POST" or local_path(request) != "/v1/messages":
        return None
    return _json_model(await request.read())[1]


async def _gemini_generation(request: web.Request) -> bool | None:
    _, method = gemini.split_model_method(request.match_info.get("name", ""))
    if request.method != "POST" or method not in ("generateContent", "streamGenerateContent"):
        return None
    return method == "streamGenerateContent"


async def _never(request: web.Request) -> bool | None:
    return None


@dataclass(frozen=True)
class Mount:
    """One fake under its prefix: how to build it, answer an injected status, spot its generations."""

    name: str
    prefix: str
    base_path: str  # appended to the prefix: the channel base URL
    provider: str  # the `tokenhub channel add` provider
    also_serves: tuple[str, ...]  # other providers of the same protocol
    build: Callable[[SimulatorConfig], web.Application]
    error: Callable[[web.Request, int], Awaitable[web.StreamResponse]]
    generation: Callable[[web.Request], Awaitable[bool | None]] = _never
    api_paths: tuple[str, ...] = ("/",)  # local path prefixes that count as API requests
    directives: frozenset[str] = frozenset()  # the fault directives the fake knows


@functools.cache
def _shipped_upstream_ids() -> tuple[tuple[str, str], ...]:
    """(protocol, upstream id) of every model of the shipped catalog."""
    return tuple((PROVIDERS[m.provider].protocol, m.upstream_id) for m in load_shipped()[1] if m.provider in PROVIDERS)


def _catalog_models(protocol: str, defaults: Iterable[str]) -> list[str]:
    """The fake's default models plus the shipped catalog's upstream ids of that protocol."""
    models = list(defaults)
    models += dict.fromkeys(i for p, i in _shipped_upstream_ids() if p == protocol and i not in models)
    return models


def _fields(scenario: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(scenario))


MOUNTS: tuple[Mount, ...] = (
    Mount(
        "openai",
        "/openai",
        "/v1",
        "openai",
        ("xai", "deepseek", "qwen", "zhipu", "moonshot", "minimax", "xiaomi", "openai-compatible"),
        lambda c: openai.create_app(c.api_keys, c.token_delay, _catalog_models("openai", openai.DEFAULT_MODELS)),
        _openai_error,
        _openai_generation,
        ("/v1/", "/chat/", "/models"),
        _fields(openai.Scenario),
    ),
    Mount(
        "anthropic",
        "/anthropic",
        "",
        "anthropic",
        (),
        lambda c: anthropic.create_app(c.api_keys, c.token_delay, _catalog_models("anthropic", anthropic.DEFAULT_MODELS)),
        _anthropic_error,
        _anthropic_generation,
        ("/v1/",),
        _fields(anthropic.Scenario),
    ),
    Mount(
        "gemini",
        "/gemini",
        "",
        "gemini",
        (),
        lambda c: gemini.create_app(c.api_keys, c.token_delay, _catalog_models("gemini", gemini.DEFAULT_MODELS)),
        _gemini_error,
        _gemini_generation,
        ("/v1beta/", "/v1/"),
        _fields(gemini.Scenario),
    ),
    Mount("ark", "/ark", "/api/v3", "ark", (), lambda c: ark.create_app(c.api_keys), _ark_error, api_paths=("/api/v3/",)),
    Mount("kling", "/kling", "", "kling", (), lambda c: kling.create_app(c.kling_credentials), _kling_error, api_paths=("/v1/",)),
    Mount(
        "dashscope",
        "/dashscope",
        "/api/v1",
        "dashscope",
        (),
        lambda c: dashscope.create_app(c.api_keys),
        _dashscope_error,
        api_paths=("/api/v1/",),
    ),
)


# --------------------------------------------------------------------------- the middleware


@dataclass
class SimulatorStats:
    requests: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": {str(k): v for k, v in self.errors.items()}, "faults": self.faults}


STATS_KEY = web.AppKey("tokenhub_simulator_stats", SimulatorStats)


def _fault_directives(fault: str, is_stream: bool, known: frozenset[str]) -> str:
    if fault == "stall":
        return f"#fake:delay={STALL_SECONDS}" if is_stream else "#fake:hang"
    return f"#fake:{fault}" if fault in known else ""


def operator_faults(
    mount: Mount, config: SimulatorConfig, state: Any, stats: SimulatorStats
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The sub-app middleware applying ``config`` to every request of ``mount``'s fake."""
    rng = random.Random(f"{config.seed}:{mount.name}") if config.seed is not None else random.Random()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        stats.requests += 1
        try:
            if config.latency > 0:
                try:
                    await sleep_unless_gone(request, config.latency)
                except ClientGone:
                    return web.Response(status=499)  # never reaches the (gone) client
            matched = request.match_info.http_exception is None
            if not matched or not local_path(request).startswith(mount.api_paths):
                return await handler(request)
            if config.error_rates and (status := _pick(rng, config.error_rates)) is not None:
                stats.errors[status] = stats.errors.get(status, 0) + 1
                return await mount.error(request, status)
            is_stream = await mount.generation(request) if config.faults else None
            if is_stream is None or (fault := _pick(rng, config.faults)) is None:
                return await handler(request)
            extra = _fault_directives(fault, is_stream, mount.directives)
            if extra:
                stats.faults[fault] = stats.faults.get(fault, 0) + 1
            token = EXTRA_DIRECTIVES.set(extra)
            try:
                return await handler(request)
            finally:
                EXTRA_DIRECTIVES.reset(token)
        finally:
            del state.requests[:-KEEP_REQUESTS]

    return middleware


# --------------------------------------------------------------------------- the app

SUBAPPS_KEY = web.AppKey("tokenhub_simulator_subapps", dict)  # name -> the mounted fake app


def create_app(config: SimulatorConfig | None = None, mounts: Iterable[Mount] = MOUNTS) -> web.Application:
    """One app serving every fake under its prefix, with ``config``'s faults.

    ``app[SUBAPPS_KEY][name]`` is the mounted fake (its ``["state"]`` the fake's state).
    """
    config = config or SimulatorConfig()
    app = web.Application()
    subapps: dict[str, web.Application] = {}
    for mount in mounts:
        sub = mount.build(config)
        sub[MOUNT_PREFIX_KEY] = mount.prefix
        # innermost, so the fake's own error middleware (request ids, 404 bodies) wraps it
        sub[STATS_KEY] = SimulatorStats()
        sub.middlewares.append(operator_faults(mount, config, sub["state"], sub[STATS_KEY]))
        app.add_subapp(mount.prefix, sub)
        subapps[mount.name] = sub
    app[SUBAPPS_KEY] = subapps
    app.router.add_get("/", _index)
    return app


async def _index(request: web.Request) -> web.Response:
    origin = f"{request.scheme}://{request.host}"
    subapps = request.app[SUBAPPS_KEY]
    return web.json_response(
        {
            "object": "tokenhub.simulator",
            "base_urls": dict(base_urls(origin)),
            "stats": {name: sub[STATS_KEY].as_json() for name, sub in subapps.items()},
        }
    )


def base_urls(origin: str, mounts: Iterable[Mount] = MOUNTS) -> list[tuple[str, str]]:
    """``[(name, channel base URL), …]`` for a simulator reachable at ``origin``."""
    return [(m.name, f"{origin}{m.prefix}{m.base_path}") for m in mounts]


def channel_commands(origin: str, config: SimulatorConfig | None = None, mounts: Iterable[Mount] = MOUNTS) -> list[str]:
    """The ``tokenhub channel add`` command pointing a channel at each fake."""
    config = config or SimulatorConfig()
    api_key = sorted(config.api_keys)[0] if config.api_keys else DEFAULT_KEY
    kling = config.kling_credentials
    kling_key = ":".join(sorted(kling.items())[0]) if kling else DEFAULT_KLING_KEY
    return [
        f"tokenhub channel add {m.provider} --name sim-{m.name} --base-url {url} "
        f"--api-key {kling_key if m.name == 'kling' else api_key}"
        for m, (_, url) in zip(list(mounts), base_urls(origin, mounts))
    ]
