"""Who calls the files and batches endpoints, and as whom a batch's lines run: the one
place these routes authenticate (issue #17's database keys plug in here)."""

from __future__ import annotations

from aiohttp import web

from broker.auth import Caller
from broker.frontdoor import FrontDoor
from broker.routes.keys import FRONT_DOOR


async def authenticate(request: web.Request) -> Caller:
    """The master key, a config key or a database key (issue #17's Redis mirror)."""
    return await request.app[FRONT_DOOR].tenancy.authenticate(request)


async def caller_of(front: FrontDoor, owner: str, token: str | None) -> Caller | None:
    """The caller a batch runs as, from the owner id (and, for a database key, the key's
    hash) it recorded; None once its key is gone, blocked or expired."""
    caller = front.auth.caller_by_owner(owner)
    if caller is None and token is not None:
        caller = await front.tenancy.caller_for_token(token)
    return caller
