"""GET /v1/streams/{request_id}: replay what a client missed (after `Last-Event-ID` or
`?after=`), then follow the reply live, from any front door.

A resumed stream is rare, so it follows its reply stream with a blocking XREAD on a
separate, bounded connection pool rather than through the live subscription (which only
the front door that enqueued the request receives)."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from broker import sse_frames
from broker.routes.keys import FRONT_DOOR
from workers import envelopes, redis_streams
from workers.envelopes import Record, decode_record
from workers.errors import InvalidRequest, NotFound, ServiceUnavailable

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
    caller = await front.tenancy.authenticate(request)
    request_id = request.match_info["request_id"]
    after = _after(request)
    if not caller.may_read(request_id):
        # The same answer as for an unknown id: another key's requests are not even named.
        raise _not_found(request_id, front.settings.reply_ttl_s)
    return await follow_reply(request, request_id, after)


async def follow_reply(
    request: web.Request,
    request_id: str,
    after: int,
    headers: dict[str, str] | None = None,
    *,
    is_background: bool = False,
    must_exist: bool = True,
) -> web.StreamResponse:
    """Stream the reply of `request_id` (whose it is already checked) from above `after`,
    then live until it ends; also how a background response is streamed (issue #18,
    broker/routes/responses_background.py). A background request is not claimed: nobody
    waits on it to cancel it, and its own cancel must still find it unclaimed. Without
    `must_exist`, a reply with no record yet is waited for (a request just enqueued)."""
    front = request.app[FRONT_DOOR]
    try:
        rows = await redis_streams.read_records(front.redis, front.keys, request_id)
        if (
            must_exist
            and not rows
            and not (
                not is_background
                and await redis_streams.is_claimed(front.redis, front.keys, request_id)
            )
        ):
            # Unknown, expired, or not started. Claiming it here (and deleting the claim)
            # would let a concurrent resume of the same id see that claim, take the id for a
            # request another front door resumed, and follow an empty reply until the deadline.
            raise _not_found(request_id, front.settings.reply_ttl_s)
        if not is_background:
            # Claim the request so the front door it left does not cancel it after the grace.
            await redis_streams.claim_resumed(
                front.redis, front.keys, request_id, front.id, front.settings.reply_ttl_s
            )
    except RedisError as exc:
        why = "full" if redis_streams.is_out_of_memory(exc) else "unreachable"
        raise ServiceUnavailable(
            f"the reply store (Redis) is {why}; retry shortly",
            code="queue_unavailable",
            retry_after_s=1.0,
        ) from exc
    response = web.StreamResponse(
        headers={**sse_frames.HEADERS, "x-request-id": request_id, **(headers or {})}
    )
    await response.prepare(request)
    replay = _Replay(response, after)
    last_entry = "0-0"
    for entry, raw in rows:
        last_entry = entry
        if await replay.write(decode_record(raw)):
            return response
    deadline = front.hub_loop_time() + front.settings.request_timeout_s
    while front.hub_loop_time() < deadline:
        found = await redis_streams.follow_records(
            front.follow_redis, front.keys, request_id, last_entry, FOLLOW_BLOCK_MS
        )
        for entry, raw in found:
            last_entry = entry
            if await replay.write(decode_record(raw)):
                return response
    return response


class _Replay:
    """Writes records as SSE events above `after`; the parts of a large non-stream response
    are held until its last record, which frames the whole body as its one event."""

    def __init__(self, response: web.StreamResponse, after: int) -> None:
        self.response = response
        self.after = after
        self.parts: list[bytes] = []

    async def write(self, record: Record) -> bool:
        """Write one record; True once the reply has ended."""
        if record.end == envelopes.PART:
            self.parts.append(record.body)
            return False
        record, self.parts = envelopes.join_parts(self.parts, record), []
        await self.response.write(sse_frames.frame(record, self.after))
        return record.is_final
