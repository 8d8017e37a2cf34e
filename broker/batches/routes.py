"""/v1/batches: create (the input checked line by line first), retrieve, list, cancel, in
OpenAI's shapes so `client.batches.*` of the official SDK works unchanged."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

import msgspec
from aiohttp import web

from broker.batches import native_target, split
from broker.batches.endpoints import ENDPOINTS
from broker.batches.lines import check_input
from broker.batches.records import (
    TERMINAL,
    Batch,
    BatchRecord,
    CreateBatch,
    RequestCounts,
    new_batch_id,
)
from broker.batches.state import BATCHES
from broker.body import decode, read_json_body
from broker.files.callers import authenticate
from broker.files.registry import FILES, new_file_id
from broker.files.routes import json_response
from broker.routes.keys import FRONT_DOOR
from workers import durations, redis_streams
from workers.errors import InvalidRequest

MAX_LIST_LIMIT = 100
# A window up to a week: OpenAI allows 24h; shorter ones serve tests and urgent jobs.
MAX_WINDOW_S = 7 * 86400


class Conflict(InvalidRequest):
    status = 409
    default_code = "batch_not_cancellable"


decode_create = msgspec.json.Decoder(CreateBatch).decode


class BatchList(msgspec.Struct, kw_only=True):
    data: list[Batch]
    has_more: bool
    object: Literal["list"] = "list"
    first_id: str | None = None
    last_id: str | None = None


async def create(request: web.Request) -> web.Response:
    front = request.app[FRONT_DOOR]
    caller = await authenticate(request)
    body = decode(decode_create, await read_json_body(request, front.settings.max_body_bytes))
    if body.endpoint not in ENDPOINTS:
        raise InvalidRequest(
            f"endpoint not supported: {ascii(body.endpoint)}; batches run " + ", ".join(ENDPOINTS),
            param="endpoint",
            code="unsupported_endpoint",
        )
    window_s = _window_s(body.completion_window)
    files = request.app[FILES]
    input_file = await files.get(caller.owner, body.input_file_id)
    if input_file.purpose != "batch":
        raise InvalidRequest(
            f"the input file's purpose is `{input_file.purpose}`; upload it with purpose `batch`",
            param="input_file_id",
        )
    checked = await check_input(
        files.store.read_stream(input_file.id), body.endpoint, front, caller
    )
    now = int(time.time())
    deployments = front.config.deployments
    # The provider's own batch API, when the config says so (native_target.py); a batch
    # whose groups run in several places is split by group (split.py).
    native = native_target.choose(deployments, body.endpoint, checked.groups)
    parts = None if native else split.plan(deployments, body.endpoint, checked.groups)
    record = BatchRecord(
        batch=Batch(
            id=new_batch_id(),
            endpoint=body.endpoint,
            input_file_id=input_file.id,
            completion_window=body.completion_window,
            created_at=now,
            expires_at=now + window_s,
            request_counts=RequestCounts(total=checked.lines),
            metadata=body.metadata,
        ),
        owner=caller.owner,
        token=caller.token if caller.principal is not None else None,
        output_key=new_file_id(),
        error_key=new_file_id(),
        native=native,
    )
    if parts is not None:
        await split.write_inputs(files.store, input_file.id, body.endpoint, parts, front, caller)
        record.parts = await split.save_parts(request.app[BATCHES], record, parts)
    await request.app[BATCHES].put(record)
    await redis_streams.activate_batch(front.redis, front.keys, record.batch.id)
    return json_response(record.batch)


def _window_s(text: str) -> int:
    try:
        end = durations.after(datetime.fromtimestamp(0, UTC), text)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="completion_window") from None
    seconds = int(end.timestamp())
    if seconds > MAX_WINDOW_S:
        raise InvalidRequest("`completion_window` is at most 7d", param="completion_window")
    return seconds


async def _shown(request: web.Request, record: BatchRecord) -> Batch:
    """The batch as its owner sees it: a cancel asked for and not yet recorded shows."""
    batch = record.batch
    if batch.status in TERMINAL or batch.status == "cancelling":
        return batch
    front = request.app[FRONT_DOOR]
    asked = await redis_streams.batch_cancel_requested(front.redis, front.keys, batch.id)
    if asked is None:
        return batch
    return msgspec.structs.replace(batch, status="cancelling", cancelling_at=asked)


async def retrieve(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    record = await request.app[BATCHES].get(caller.owner, request.match_info["batch_id"])
    return json_response(await _shown(request, record))


async def cancel(request: web.Request) -> web.Response:
    front = request.app[FRONT_DOOR]
    caller = await authenticate(request)
    record = await request.app[BATCHES].get(caller.owner, request.match_info["batch_id"])
    batch = record.batch
    if batch.status in TERMINAL:
        if batch.status == "cancelled":
            return json_response(batch)
        raise Conflict(f"Cannot cancel a batch with status {batch.status}", param="batch_id")
    await redis_streams.request_batch_cancel(front.redis, front.keys, batch.id, int(time.time()))
    return json_response(await _shown(request, record))


async def list_batches(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    text = request.query.get("limit", "20")
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIST_LIMIT:
        raise InvalidRequest(
            f"`limit` must be an integer from 1 to {MAX_LIST_LIMIT}", param="limit"
        )
    limit = int(text)
    found = await request.app[BATCHES].list(caller.owner)
    after = request.query.get("after")
    if after is not None:
        ids = [b.id for b in found]
        found = found[ids.index(after) + 1 :] if after in ids else []
    page = found[:limit]
    return json_response(
        BatchList(
            data=page,
            has_more=len(found) > limit,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
        )
    )


def add_batch_routes(app: web.Application) -> None:
    app.router.add_post("/v1/batches", create)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{batch_id}", retrieve)
    app.router.add_post("/v1/batches/{batch_id}/cancel", cancel)
