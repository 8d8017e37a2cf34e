"""`add_console(app)`: the console's routes, its security headers and its state's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from broker.console import pages, proxy, signin
from broker.console.loopback import Loopback
from broker.console.sessions import SessionStore
from broker.console.state import CONSOLE, ConsoleState
from broker.routes.keys import FRONT_DOOR


async def _console_ctx(app: web.Application) -> AsyncIterator[None]:
    # After the front door's context: the sessions share its Redis pool and namespace.
    front = app[FRONT_DOOR]
    loopback = Loopback()
    app[CONSOLE] = ConsoleState(SessionStore(front.redis, front.keys), loopback)
    try:
        yield
    finally:
        await loopback.close()


def add_console(app: web.Application) -> None:
    app.cleanup_ctx.append(_console_ctx)
    app.on_response_prepare.append(pages.add_security_headers)
    app.router.add_get("/ui", pages.index)
    app.router.add_get("/ui/", pages.index)
    app.router.add_get("/ui/static/{name:.+}", pages.static_file)
    app.router.add_get("/ui/api/session", signin.current)
    app.router.add_post("/ui/api/session", signin.sign_in)
    app.router.add_post("/ui/api/session/end", signin.sign_out)
    app.router.add_get("/ui/api/call/{path:.+}", proxy.call)
    app.router.add_post("/ui/api/call/{path:.+}", proxy.call)
