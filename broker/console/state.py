"""The console's state on the app: its session store and its client of the public API."""

from __future__ import annotations

from aiohttp import web

from broker.console.loopback import Loopback
from broker.console.sessions import SessionStore


class ConsoleState:
    def __init__(self, store: SessionStore, loopback: Loopback) -> None:
        self.store = store
        self.loopback = loopback


CONSOLE = web.AppKey("console", ConsoleState)
