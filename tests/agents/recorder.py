"""A recording HTTP reverse proxy in front of the gateway: which calls a command-line agent makes, and
what the gateway answered. The agent talks to the proxy; every request is forwarded as it is and the
response streamed back as it comes, so the agent sees the gateway unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.support.servers import ServerThread

SESSION = web.AppKey("session", aiohttp.ClientSession)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


@dataclass
class Call:
    method: str
    path: str  # without the query string
    status: int


@dataclass
class Recorder:
    target: str  # the gateway's origin, http://127.0.0.1:port
    calls: list[Call] = field(default_factory=list)

    def paths(self) -> set[str]:
        return {f"{call.method} {call.path}" for call in self.calls}

    def failures(self) -> list[Call]:
        return [call for call in self.calls if call.status >= 400]

    async def forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Accept-Encoding"] = "identity"
        session: aiohttp.ClientSession = request.app[SESSION]
        url = self.target + request.rel_url.raw_path_qs
        async with session.request(request.method, url, data=body, headers=headers, allow_redirects=False) as upstream:
            self.calls.append(Call(request.method, request.path, upstream.status))
            out = web.StreamResponse(status=upstream.status)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    out.headers[key] = value
            await out.prepare(request)
            async for chunk in upstream.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out


def start_recorder(target: str) -> tuple[ServerThread, Recorder]:
    recorder = Recorder(target)
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def open_session(app: web.Application):
        app[SESSION] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300), auto_decompress=False)
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(open_session)
    app.router.add_route("*", "/{tail:.*}", recorder.forward)
    return ServerThread(app).start(), recorder
