"""A route's request run with the hooks of issue #19 around it, whatever its API: the
pre_call guardrails (a block is a 400 before anything is queued), the response cache (a hit
is answered here, before admission; a miss is stored when it ends), then the
during/post_call guardrails on the relay."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from broker.auth import Caller
from broker.frontdoor import FrontDoor
from broker.guardrails import GUARDRAILS, key_guardrails
from broker.hooks import note_caller
from broker.relay import Relay
from broker.response_cache import RESPONSE_CACHE
from workers.errors import InvalidRequest


async def run_hooked(
    request: web.Request,
    front: FrontDoor,
    caller: Caller,
    *,
    kind: str,
    body: bytes,
    group: str,
    admit: Callable[[bytes], Awaitable[Relay]],
    stream: bool = False,
    include_usage: bool = False,
    vary: dict[str, str] | None = None,
    start: Callable[[Relay], Awaitable[web.StreamResponse]] | None = None,
) -> web.StreamResponse:
    """Answer `body` (of the hooks' `kind`, its API: chat, embedding, text_completion,
    messages, responses; workers/hooks/api_shapes.py) through `admit`, which makes the
    admitted relay for the body the guardrails let through. `vary`: request headers that
    change the answer (the cache keys on them too). `start`: how to answer with the admitted
    relay instead of relaying it (a background response answers at once; never cached)."""
    note_caller(caller)  # who asks, for the callbacks of a refusal and the team's spans
    guards = request.app.get(GUARDRAILS)
    checked = None
    if guards is not None:
        body, checked = await guards.before(body, caller, kind)
    elif key_guardrails(caller):
        # The key's guardrails cannot run without the config's: refused, never skipped.
        raise InvalidRequest(
            f"this key's guardrails {list(key_guardrails(caller))} are not configured",
            param="guardrails",
        )
    pending = None
    cache = request.app.get(RESPONSE_CACHE)
    if cache is not None:
        hit, pending = await cache.answer(
            request,
            body,
            kind=kind,
            group=group,
            caller=caller,
            stream=stream,
            include_usage=include_usage,
            vary=vary,
        )
        if hit is not None:
            return hit
    relay = await admit(body)
    if guards is not None and checked is not None:
        guards.attach(relay, checked, caller, kind)
    if start is not None:
        return await start(relay)
    if pending is None:
        return await relay.run(request)
    pending.attach(relay)
    try:
        return await relay.run(request)
    finally:
        pending.settle(front.tasks)
