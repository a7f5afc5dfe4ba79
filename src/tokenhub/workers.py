"""``tokenhub serve --workers N``: N gateway processes sharing one port.

The parent migrates the database and runs the first-start duties once, binds the port, forks the
workers (on Linux each listens on a socket of its own on that port, and the kernel spreads the
connections over them) and watches them: a worker that dies is replaced; SIGTERM or SIGINT is passed on to every
worker, each drains (no new requests; open streams finish or are cut at TOKENHUB_DRAIN_TIMEOUT, holds
settle) and the parent exits when they have — killing, as a last resort, a worker still alive
``KILL_MARGIN`` seconds past that deadline. The workers share what any gateway processes share —
the database (balances, holds, the config version they poll) and, with TOKENHUB_REDIS_URL, the
rate limits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from typing import Callable

from tokenhub.config import Settings

log = logging.getLogger("tokenhub.workers")

RESPAWN_PAUSE = 1.0  # seconds between replacing a dead worker and the next replacement
WAIT_POLL = 0.1  # seconds between two looks for exited workers
KILL_MARGIN = 15.0  # seconds past the drain deadline after which a worker still alive is killed


# Linux spreads a port's connections over the sockets bound to it with SO_REUSEPORT (by a hash of each
# connection's addresses). One socket shared by every worker spreads nothing: the worker that wakes first
# accepts every connection waiting, so a client's keep-alive connections (a load balancer's, a load
# generator's) all landed on one worker and the others idled.
SPREAD_BY_KERNEL = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int) -> socket.socket:
    """The port, held by the parent. On Linux bound but not listening (no connection goes to it): each
    worker listens on a socket of its own bound beside it (``worker_socket``). Elsewhere the one socket
    every worker accepts from."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if SPREAD_BY_KERNEL:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if not SPREAD_BY_KERNEL:
        sock.listen(2048)
        sock.set_inheritable(True)
    return sock


def worker_socket(port: socket.socket) -> socket.socket:
    """A worker's listening socket: its own, on the parent's address, where the kernel spreads connections."""
    if not SPREAD_BY_KERNEL:
        return port
    sock = socket.socket(port.family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(port.getsockname())
    sock.listen(2048)
    return sock


async def prepare(settings: Settings) -> None:
    """Migrate and bootstrap once, before the workers start (so they never race to do it)."""
    from tokenhub.gateway import bootstrap
    from tokenhub.secrets_box import SecretBox, load_or_create_secret
    from tokenhub.storage import migrate
    from tokenhub.storage.engine import create_engine, deployment_id

    engine = create_engine(settings.database_url)
    try:
        await migrate.upgrade(engine)
        await bootstrap(engine, SecretBox(load_or_create_secret(settings.home, settings.secret_key)), settings)
        async with engine.begin() as conn:
            await deployment_id(conn)
    finally:
        await engine.dispose()


def kill_stragglers(children: dict[int, int]) -> None:
    """The last resort: workers that outlived their drain by ``KILL_MARGIN`` (their holds go to the sweeper)."""
    for pid, number in children.items():
        log.error("worker %d (pid %d) did not stop within its drain deadline; killing it", number, pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def supervise(settings: Settings, sock: socket.socket, workers: int, run_worker: Callable[[socket.socket], None]) -> int:
    """Fork ``workers`` processes running ``run_worker(sock)``; return when all have exited after a signal."""
    asyncio.run(prepare(settings))
    if workers > 1 and not settings.redis_url:
        log.warning("%d workers without TOKENHUB_REDIS_URL: rate limits are counted per worker, not globally", workers)
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def spawn(number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                run_worker(worker_socket(sock))
            except BaseException:  # noqa: BLE001 - report and leave; the parent replaces us
                log.exception("worker %d failed", number)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = number

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for number in range(workers):
        spawn(number)
    log.info("serving with %d workers", workers, extra={"workers": workers, "pids": sorted(children)})
    kill_at: float | None = None
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:  # none exited: look again soon (a blocking wait would not notice a signal's deadline)
            if stopping:
                kill_at = kill_at or time.monotonic() + settings.drain_timeout + KILL_MARGIN
                if time.monotonic() >= kill_at:
                    kill_stragglers(children)
                    kill_at = float("inf")
            time.sleep(WAIT_POLL)
            continue
        number = children.pop(pid, None)
        if number is None:
            continue
        if not stopping:
            log.error("worker %d (pid %d) exited with status %d; starting another", number, pid, os.waitstatus_to_exitcode(status))
            time.sleep(RESPAWN_PAUSE)
            if not stopping:
                spawn(number)
    sock.close()
    return 0
