"""surface.DeferredRoutes: routes built on the first request that may be theirs, then answering as if
they had been registered with the app (the admin API and the console are served this way)."""

from __future__ import annotations

import asyncio

from aiohttp import ClientSession, web

from tokenhub.surface import DeferredRoutes


def test_deferred_routes_load_on_first_ask_and_then_answer_like_registered_ones():
    builds: list[str] = []

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.match_info['name']}")

    async def eager(request: web.Request) -> web.Response:
        return web.Response(text="eager")

    def build() -> list[web.RouteDef]:
        builds.append("built")
        return [web.get("/admin/{name}", hello), web.post("/admin/only-post", hello)]

    deferred = DeferredRoutes("/admin", build)

    async def scenario() -> None:
        app = web.Application()
        app.add_routes([web.get("/api/thing", eager)])
        app.router.register_resource(deferred)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        try:
            async with ClientSession() as http:
                async with http.get(f"{base}/api/thing") as r:
                    assert (r.status, await r.text()) == (200, "eager")
                async with http.get(f"{base}/elsewhere") as r:
                    assert r.status == 404
                assert builds == [] and not deferred.loaded  # nothing asked under /admin yet

                async with http.get(f"{base}/admin/ada") as r:
                    assert (r.status, await r.text()) == (200, "hello ada")
                async with http.delete(f"{base}/admin/ada") as r:
                    assert r.status == 405 and r.headers["Allow"] == "GET,HEAD"
                async with http.get(f"{base}/admin/ada/deeper") as r:
                    assert r.status == 404
                async with http.get(f"{base}/admin/grace") as r:
                    assert (r.status, await r.text()) == (200, "hello grace")
                assert builds == ["built"] and deferred.loaded and len(deferred) == 3  # GET, HEAD, POST
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_the_consoles_shutdown_and_cleanup_hooks_run_from_the_apps_signals(tmp_path):
    """The console is built after the app started, so its pages give their shutdown and cleanup hooks to
    the shell; the app's own signals run them, once the console exists (and nothing before)."""
    from tests.support.harness import gateway_settings
    from tokenhub.app import CONSOLE, create_app

    app = create_app(gateway_settings(tmp_path / "home", f"sqlite:///{tmp_path / 'gateway.db'}"))
    ran: list[str] = []

    async def scenario() -> None:
        app.freeze()
        await app.on_shutdown.send(app)
        await app.on_cleanup.send(app)  # the console was never built: nothing to run, nothing built
        shell = app[CONSOLE].console.shell
        assert shell.mailer is not None and shell.mailer.close in shell.on_shutdown

        async def record(name: str, _app: web.Application) -> None:
            ran.append(name)

        shell.on_shutdown.append(lambda a: record("shutdown", a))
        shell.on_cleanup.append(lambda a: record("cleanup", a))
        await app.on_shutdown.send(app)
        await app.on_cleanup.send(app)

    asyncio.run(scenario())
    assert ran == ["shutdown", "cleanup"]
