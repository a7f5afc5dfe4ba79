"""The Python floor: a minimal pass-through proxy (aiohttp server + one shared ClientSession, uvloop).

No auth, no billing, no parsing: the request body is forwarded as-is to UPSTREAM + path, a
JSON answer is relayed whole, an SSE answer chunk by chunk as it arrives.

Run: ``python bench/bare_proxy.py --port 9002 --upstream http://127.0.0.1:9001``
"""

from __future__ import annotations

import argparse

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
    args = ap.parse_args()
    uvloop.install()
    web.run_app(make_app(args.upstream.rstrip("/")), host=args.host, port=args.port, access_log=None, print=None,
                backlog=1024)


if __name__ == "__main__":
    main()
