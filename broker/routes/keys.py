"""Typed application keys: the state every handler reads."""

from __future__ import annotations

from aiohttp import web

from broker.frontdoor import FrontDoor

FRONT_DOOR = web.AppKey("front_door", FrontDoor)
