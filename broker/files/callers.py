"""Who calls the files and batches endpoints, and as whom a batch's lines run: the one
place these routes authenticate (issue #17's database keys plug in here)."""

from __future__ import annotations

from aiohttp import web

from broker.auth import Caller
from broker.frontdoor import FrontDoor
from broker.routes.keys import FRONT_DOOR


async def authenticate(request: web.Request) -> Caller:
    return request.app[FRONT_DOOR].auth.check(request)


def caller_of(front: FrontDoor, owner: str) -> Caller | None:
    """The caller a batch runs as, from the owner id it recorded; None once its key is gone."""
    return front.auth.caller_by_owner(owner)
