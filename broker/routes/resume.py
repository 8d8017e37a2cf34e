"""GET /v1/streams/{request_id}: replay what a client missed (after `Last-Event-ID` or
`?after=`), then follow the reply live, from any front door.

A resumed stream is rare, so it follows its reply stream with a blocking XREAD on a
separate, bounded connection pool rather than through the live subscription (which only
the front door that enqueued the request receives)."""

from __future__ import annotations

from aiohttp import web

from broker import sse
from broker.routes.keys import FRONT_DOOR
from workers import streams
from workers.errors import InvalidRequest, NotFound
from workers.messages import decode_record

FOLLOW_BLOCK_MS = 1000


def _after(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    try:
        after = int(raw)
    except ValueError:
        raise InvalidRequest(
            f"`Last-Event-ID`/`after` must be an event id (an integer); got {raw!r}",
            param="Last-Event-ID",
        ) from None
    if after < 0:
        raise InvalidRequest("`Last-Event-ID`/`after` must not be negative", param="after")
    return after


def _not_found(request_id: str, reply_ttl_s: int) -> NotFound:
    return NotFound(
        f"no reply stream for request `{request_id}`: unknown, or expired "
        f"{reply_ttl_s}s after it finished",
        param="request_id",
        code="stream_not_found",
    )


async def resume_stream(request: web.Request) -> web.StreamResponse:
    front = request.app[FRONT_DOOR]
    caller = front.auth.check(request)
    request_id = request.match_info["request_id"]
    after = _after(request)
    if not caller.may_read(request_id):
        # The same answer as for an unknown id: another key's requests are not even named.
        raise _not_found(request_id, front.settings.reply_ttl_s)
    rows = await streams.read_records(front.redis, front.keys, request_id)
    if not rows and not await front.redis.exists(front.keys.state(request_id)):
        # Unknown, expired, or not started. Claiming it here (and deleting the claim) would
        # let a concurrent resume of the same id see that claim, take the id for a request
        # another front door resumed, and follow an empty reply until the deadline.
        raise _not_found(request_id, front.settings.reply_ttl_s)
    # Claim the request so the front door it left does not cancel it after the grace period.
    owner = f"resumed:{front.id}".encode()
    await streams.claim_disconnected(
        front.redis, front.keys, request_id, owner, front.settings.reply_ttl_s
    )
    response = web.StreamResponse(headers={**sse.HEADERS, "x-request-id": request_id})
    await response.prepare(request)
    last_entry = "0-0"
    for entry, raw in rows:
        record = decode_record(raw)
        await response.write(sse.frame(record, after))
        last_entry = entry
        if record.is_final:
            return response
    deadline = front.hub_loop_time() + front.settings.request_timeout_s
    while front.hub_loop_time() < deadline:
        found = await streams.follow_records(
            front.follow_redis, front.keys, request_id, last_entry, FOLLOW_BLOCK_MS
        )
        for entry, raw in found:
            record = decode_record(raw)
            await response.write(sse.frame(record, after))
            last_entry = entry
            if record.is_final:
                return response
    return response
