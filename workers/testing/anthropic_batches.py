"""Anthropic's Message Batches API as a fake: `POST /v1/messages/batches` with
`requests: [{custom_id, params}]`, retrieve, list, cancel, and the results as JSONL at
the batch's `results_url`, as `client.messages.batches` of the official SDK calls them.

A batch waits the server's `batch_delay_s`, then runs each request against this same
fake's `/v1/messages` (batch_runs.py); results are `succeeded` (the message) or
`errored` (the error body), and a cancel leaves the rest `canceled`. Request counts stay
at `processing` until the batch ends, as the service reports them.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import msgspec
from aiohttp import web

from workers.testing import anthropic_errors as errors
from workers.testing.batch_runs import LineCall, LineResult, run_lines
from workers.testing.responses import json_response
from workers.testing.state import FakeState, record_request

MAX_REQUESTS = 100_000


class _Request(msgspec.Struct):
    custom_id: str
    params: msgspec.Raw


class _Create(msgspec.Struct):
    requests: list[_Request]


class _Counts(msgspec.Struct):
    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0


class _Batch(msgspec.Struct, kw_only=True):
    id: str
    type: str = "message_batch"
    processing_status: str = "in_progress"
    request_counts: _Counts
    created_at: str
    expires_at: str
    ended_at: str | None = None
    cancel_initiated_at: str | None = None
    archived_at: str | None = None
    results_url: str | None = None


class _Run:
    """A batch and what its run found so far."""

    def __init__(self, batch: _Batch, custom_ids: list[str]) -> None:
        self.batch = batch
        self.custom_ids = custom_ids
        self.results: dict[str, bytes] = {}
        self.counts = _Counts()


def _now(offset_s: float = 0.0) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_s)
    return moment.isoformat().replace("+00:00", "Z")


class _Api:
    """The routes' handlers over one server's state."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.runs: dict[str, _Run] = {}

    async def create(self, request: web.Request) -> web.StreamResponse:
        raw = await record_request(request, self.state)
        request_id = errors.request_id(next(self.state.ids))
        denied = _denied(request, self.state, request_id)
        if denied is not None:
            return denied
        try:
            body = msgspec.json.decode(raw, type=_Create)
        except msgspec.DecodeError as exc:
            return errors.invalid_request(f"Invalid request body: {exc}", request=request_id)
        ids = [r.custom_id for r in body.requests]
        if not ids or len(ids) > MAX_REQUESTS or len(set(ids)) != len(ids):
            message = "requests: custom_ids must be unique, 1 to 100,000 of them"
            return errors.invalid_request(message, request=request_id)
        batch = _Batch(
            id=f"msgbatch_{next(self.state.ids):024x}",
            request_counts=_Counts(processing=len(ids)),
            created_at=_now(),
            expires_at=_now(86400),
        )
        run = _Run(batch, ids)
        self.runs[batch.id] = run
        lines = [LineCall(r.custom_id, "/v1/messages", bytes(r.params)) for r in body.requests]
        base = f"{request.scheme}://{request.host}"
        self.state.spawn(
            _execute(self.state, run, base, _auth(request), lines), name=f"fake {batch.id}"
        )
        answer = _json(batch, request_id)  # as made, before it runs
        await asyncio.sleep(self.state.timing.batch_answer_delay_s)
        return answer

    async def retrieve(self, request: web.Request) -> web.StreamResponse:
        await record_request(request, self.state)
        found = _found(request, self.state, self.runs)
        return found if isinstance(found, web.Response) else _json(found.batch, "")

    async def results(self, request: web.Request) -> web.StreamResponse:
        await record_request(request, self.state)
        found = _found(request, self.state, self.runs)
        if isinstance(found, web.Response):
            return found
        if found.batch.processing_status != "ended":
            message = f"Message Batch {found.batch.id} has not yet finished processing"
            return errors.invalid_request(message, request="")
        body = b"".join(found.results[c] + b"\n" for c in found.custom_ids)
        return web.Response(body=body, content_type="application/binary")

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        await record_request(request, self.state)
        found = _found(request, self.state, self.runs)
        if isinstance(found, web.Response):
            return found
        if found.batch.processing_status == "in_progress":
            found.batch.processing_status = "canceling"
            found.batch.cancel_initiated_at = _now()
        return _json(found.batch, "")

    async def list_batches(self, request: web.Request) -> web.StreamResponse:
        await record_request(request, self.state)
        denied = _denied(request, self.state, "")
        if denied is not None:
            return denied
        # Newest first, `limit` (default 20) at a time after the `after_id` cursor.
        data = [run.batch for run in reversed(self.runs.values())]
        after = request.query.get("after_id")
        if after is not None:
            ids = [batch.id for batch in data]
            data = data[ids.index(after) + 1 :] if after in ids else []
        asked = request.query.get("limit", "20")
        limit = min(1000, max(1, int(asked))) if asked.isdigit() else 20
        has_more = len(data) > limit
        data = data[:limit]
        page: dict[str, Any] = {
            "data": data,
            "has_more": has_more,
            "first_id": data[0].id if data else None,
            "last_id": data[-1].id if data else None,
        }
        return json_response(msgspec.json.encode(page))


def routes(state: FakeState) -> list[web.RouteDef]:
    api = _Api(state)
    return [
        web.post("/v1/messages/batches", api.create),
        web.get("/v1/messages/batches", api.list_batches),
        web.get("/v1/messages/batches/{batch_id}", api.retrieve),
        web.get("/v1/messages/batches/{batch_id}/results", api.results),
        web.post("/v1/messages/batches/{batch_id}/cancel", api.cancel),
    ]


def _auth(request: web.Request) -> dict[str, str]:
    names = ("x-api-key", "Authorization", "anthropic-version")
    return {name: request.headers[name] for name in names if name in request.headers}


def _denied(request: web.Request, state: FakeState, request_id: str) -> web.Response | None:
    key = request.headers.get("x-api-key")
    if key is None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        key = token if scheme.lower() == "bearer" else None
    if not key or not state.accepts_key(key):
        return errors.authentication_error("invalid x-api-key", request=request_id)
    if "anthropic-version" not in request.headers:
        return errors.invalid_request("anthropic-version: header is required", request=request_id)
    return None


def _found(request: web.Request, state: FakeState, runs: dict[str, _Run]) -> _Run | web.Response:
    denied = _denied(request, state, "")
    if denied is not None:
        return denied
    name = request.match_info["batch_id"]
    run = runs.get(name)
    if run is None:
        body = {"type": "error", "error": {"type": "not_found_error", "message": f"{name}"}}
        return json_response(msgspec.json.encode(body), status=404)
    return run


def _json(batch: _Batch, request_id: str) -> web.Response:
    headers = {"request-id": request_id} if request_id else None
    return json_response(msgspec.json.encode(batch), headers=headers)


async def _execute(
    state: FakeState, run: _Run, base: str, headers: dict[str, str], lines: list[LineCall]
) -> None:
    def on_result(result: LineResult) -> None:
        if result.status == 200:
            outcome: dict[str, Any] = {"type": "succeeded", "message": msgspec.Raw(result.body)}
            run.counts.succeeded += 1
        else:
            outcome = {"type": "errored", "error": msgspec.Raw(result.body)}
            run.counts.errored += 1
        line = {"custom_id": result.custom_id, "result": outcome}
        run.results[result.custom_id] = msgspec.json.encode(line)

    await run_lines(
        state,
        base,
        headers,
        lines,
        is_cancelled=lambda: run.batch.processing_status == "canceling",
        on_result=on_result,
    )
    canceled = {"type": "canceled"}
    for custom_id in run.custom_ids:
        if custom_id not in run.results:
            line = {"custom_id": custom_id, "result": canceled}
            run.results[custom_id] = msgspec.json.encode(line)
            run.counts.canceled += 1
    batch = run.batch
    batch.request_counts = run.counts
    batch.processing_status = "ended"
    batch.ended_at = _now()
    batch.results_url = f"{base}/v1/messages/batches/{batch.id}/results"
