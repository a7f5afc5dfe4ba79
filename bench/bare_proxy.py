"""The Python floor: a minimal pass-through proxy (aiohttp server + one shared ClientSession, uvloop).

No auth, no billing, no parsing: the request body is forwarded as-is to UPSTREAM + path, a
JSON answer is relayed whole, an SSE answer chunk by chunk as it arrives.

Run: ``python bench/bare_proxy.py --port 9002 --upstream http://127.0.0.1:9001``

``--workers N`` forks N such processes, each listening on a socket of its own on the port
(SO_REUSEPORT: the kernel spreads the connections), as ``tokenhub serve --workers N`` does on Linux:
the floor for what several processes cost on one core.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket

import aiohttp
import uvloop
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)


def make_app(upstream: str) -> web.Application:
    async def session_ctx(app: web.Application):
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None),
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        yield
        await app[SESSION].close()

    async def proxy(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        async with request.app[SESSION].post(upstream + request.path, data=body, headers=headers) as up:
            ctype = up.headers.get("Content-Type", "application/json")
            if ctype.startswith("text/event-stream"):
                resp = web.StreamResponse(status=up.status, headers={"Content-Type": ctype, "Cache-Control": "no-cache"})
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
            return web.Response(status=up.status, body=await up.read(), headers={"Content-Type": ctype})

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/{tail:.*}", proxy)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9002)
    ap.add_argument("--upstream", default="http://127.0.0.1:9001")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    app = make_app(args.upstream.rstrip("/"))
    if args.workers <= 1:
        uvloop.install()
        web.run_app(app, host=args.host, port=args.port, access_log=None, print=None, backlog=1024)
        return
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((args.host, args.port))
            sock.listen(1024)
            uvloop.install()
            web.run_app(app, sock=sock, access_log=None, print=None)
            os._exit(0)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: [os.kill(c, signal.SIGTERM) for c in children])
    for c in children:
        while True:
            try:
                os.waitpid(c, 0)
                break
            except InterruptedError:
                continue


if __name__ == "__main__":
    main()
