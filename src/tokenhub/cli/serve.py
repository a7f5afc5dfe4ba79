"""``tokenhub serve`` (the gateway, one process or several) and ``tokenhub simulate`` (the fake upstreams)."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import sys
from typing import Any, Callable

import click

from tokenhub.cli.common import describe_db, table
from tokenhub.config import Settings

SHUTDOWN_BACKSTOP = 2.0  # seconds aiohttp gives a handler still running after the gateway's drain
# The collector's first generation runs every GC_YOUNG container allocations (CPython's default: 700).
# A request allocates a few hundred, so the default collects several times per request at load; the
# objects a request leaves are freed by reference counting, so the young collections found almost nothing.
GC_YOUNG = 10_000


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Processes sharing the port (with TOKENHUB_REDIS_URL set, rate limits are shared too).",
)
@click.option("--access-log/--no-access-log", default=False, help="Log every request (costs some throughput).")
def serve(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the gateway (creates and migrates the database on first start)."""
    from aiohttp import web

    from tokenhub import logs
    from tokenhub.app import create_app

    settings = Settings.from_env()
    logs.configure(settings.log_format)
    click.echo(f"TokenHub: API at http://{host}:{port}/api/v1  (database: {describe_db(settings)}; workers: {workers})")

    def run(sock: socket.socket | None = None) -> None:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
            pass
        app = create_app(settings)
        app.on_startup.append(_freeze_the_heap)
        gc.set_threshold(GC_YOUNG, 20, 20)
        web.run_app(
            app,
            host=None if sock else host,
            port=None if sock else port,
            sock=sock,
            access_log=logging.getLogger("aiohttp.access") if access_log else None,
            access_log_class=logs.AccessLogger,
            print=None,
            # The gateway's own drain (TOKENHUB_DRAIN_TIMEOUT) runs first and cuts open streams at its
            # deadline; this only bounds what is left after it (requests that are not relay calls).
            shutdown_timeout=SHUTDOWN_BACKSTOP,
        )

    if workers == 1:
        run()
        return
    from tokenhub.workers import listening_socket, supervise

    supervise(settings, listening_socket(host, port), workers, run)


async def _freeze_the_heap(_app: object) -> None:
    """Once the gateway has started, what it loaded (code, catalog, routes) leaves the collector's view.

    A full collection walks every tracked object; with the startup's ~140,000 objects that is a 40 ms
    pause in the middle of requests (the p99 at c=16 was 7 x the p50). Frozen, they are never walked
    again: full collections look only at what was allocated since. The bench's README has the profile.
    """
    gc.collect()
    gc.freeze()


def _parsed(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        try:
            return parse(value or "")
        except ValueError as err:
            raise click.BadParameter(str(err).removeprefix(f"{param.opts[0]}: ")) from None

    return callback


def _keys(value: str) -> tuple[str, ...] | None:
    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    return keys or None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="TOKENHUB_SIMULATOR_HOST", show_envvar=True)
@click.option(
    "--port", default=9100, show_default=True, type=click.IntRange(1, 65535), envvar="TOKENHUB_SIMULATOR_PORT", show_envvar=True
)
@click.option(
    "--latency",
    default=0.0,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    envvar="TOKENHUB_SIMULATOR_LATENCY",
    show_envvar=True,
    help="Wait this long before answering any request (before the first byte).",
)
@click.option(
    "--token-rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="TOKENS_PER_S",
    envvar="TOKENHUB_SIMULATOR_TOKEN_RATE",
    show_envvar=True,
    help="Pace the chat fakes' streams at this many tokens (events) per second [default: unpaced].",
)
@click.option(
    "--error-rate",
    "error_rates",
    metavar="STATUS=FRACTION,...",
    callback=_parsed(lambda v: _sim().parse_error_rates(v)),
    envvar="TOKENHUB_SIMULATOR_ERROR_RATE",
    show_envvar=True,
    help="Answer that fraction of API requests with that status, in the protocol's own error format (e.g. 503=0.1,429=0.05).",
)
@click.option(
    "--fault",
    "faults",
    metavar="NAME=FRACTION,...",
    callback=_parsed(lambda v: _sim().parse_faults(v)),
    envvar="TOKENHUB_SIMULATOR_FAULT",
    show_envvar=True,
    help="Break that fraction of chat generations: reset, stall, truncate, malformed (OpenAI only), hang.",
)
@click.option(
    "--keys",
    callback=_parsed(_keys),
    metavar="KEY,...",
    envvar="TOKENHUB_SIMULATOR_KEYS",
    show_envvar=True,
    help="Upstream API keys the fakes accept; AK:SK entries are Kling's [default: accept any].",
)
@click.option(
    "--seed",
    type=int,
    envvar="TOKENHUB_SIMULATOR_SEED",
    show_envvar=True,
    help="Seed the error and fault draws, to replay the same sequence [default: random].",
)
@click.option("--access-log/--no-access-log", default=False, help="Log every request.")
def simulate(
    host: str,
    port: int,
    latency: float,
    token_rate: float | None,
    error_rates: tuple[tuple[int, float], ...],
    faults: tuple[tuple[str, float], ...],
    keys: tuple[str, ...] | None,
    seed: int | None,
    access_log: bool,
) -> None:
    """Serve fake upstreams for every supported protocol, each under its own path prefix.

    Point channels at them to rehearse failover and load-test without paying a provider;
    ``#fake:`` directives in prompts (e.g. #fake:status=503) work as in the tests.
    """
    from aiohttp import web

    sim = _sim()
    config = sim.SimulatorConfig(
        latency=latency, token_rate=token_rate, error_rates=error_rates, faults=faults, keys=keys, seed=seed
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    origin = f"http://[{shown_host}]:{port}" if ":" in shown_host else f"http://{shown_host}:{port}"

    def describe(pairs: tuple[tuple[Any, float], ...]) -> str:
        return ",".join(f"{name}={fraction:g}" for name, fraction in pairs) or "none"

    click.echo(
        f"TokenHub simulator on {origin}: latency {latency:g}s, token rate "
        f"{f'{token_rate:g}/s' if token_rate else 'unpaced'}, errors {describe(error_rates)}, "
        f"faults {describe(faults)}, seed {'random' if seed is None else seed}, "
        f"keys {'any' if keys is None else 'restricted'}"
    )
    click.echo("")
    table(
        [[m.name, url, ", ".join(m.also_serves) or "-"] for m, (_, url) in zip(sim.MOUNTS, sim.base_urls(origin))],
        ["PROTOCOL", "BASE URL", "ALSO FOR PROVIDERS"],
    )
    click.echo("")
    click.echo("Point channels at it:")
    for command in sim.channel_commands(origin, config):
        click.echo(f"  {command}")
    sys.stdout.flush()
    web.run_app(
        sim.create_app(config),
        host=host,
        port=port,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        print=None,
        shutdown_timeout=1,
    )


def _sim() -> Any:
    from tokenhub.simulator import server

    return server
