"""OpenAI's Files and Batch APIs as a fake: `/v1/files` (upload, retrieve, content,
delete) and `/v1/batches` (create, retrieve, list, cancel), as the official SDK's
`client.files` and `client.batches` call them.

A batch waits the server's `batch_delay_s`, then runs its lines one by one against this
same fake's endpoints (batch_runs.py) and ends `completed` with an output file (the 200s)
and an error file (anything else), in OpenAI's line format. A cancel stops it before the
next line: it ends `cancelled` with the lines that ran. Everything lives in memory.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from aiohttp import web

from workers.testing import openai_errors as errors
from workers.testing.batch_runs import LineCall, LineResult, run_lines
from workers.testing.responses import json_response
from workers.testing.state import FakeState, RecordedRequest, record_request

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/completions")
TERMINAL = ("completed", "failed", "expired", "cancelled")


class _File(msgspec.Struct, kw_only=True):
    id: str
    object: str = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str = "processed"


class _Counts(msgspec.Struct):
    total: int = 0
    completed: int = 0
    failed: int = 0


class _Batch(msgspec.Struct, kw_only=True):
    id: str
    object: str = "batch"
    endpoint: str
    input_file_id: str
    completion_window: str
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    completed_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    expires_at: int
    request_counts: _Counts = msgspec.field(default_factory=_Counts)
    metadata: dict[str, str] | None = None


class _CreateBatch(msgspec.Struct):
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None


class _InputLine(msgspec.Struct):
    custom_id: str
    method: str
    url: str
    body: msgspec.Raw


class _Store:
    """The server's files and batches."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[_File, bytes]] = {}
        self.batches: dict[str, _Batch] = {}

    def add_file(self, state: FakeState, content: bytes, filename: str, purpose: str) -> _File:
        meta = _File(
            id=f"file-{next(state.ids):024x}",
            bytes=len(content),
            created_at=int(time.time()),
            filename=filename,
            purpose=purpose,
        )
        self.files[meta.id] = (meta, content)
        return meta


class _Api:
    """The routes' handlers over one server's state."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.store = _Store()

    async def upload(self, request: web.Request) -> web.StreamResponse:
        denied = _denied(request, self.state)
        if denied is not None:
            return denied
        form = await request.post()
        # The multipart body was consumed by the form: recorded without it.
        self.state.record(
            RecordedRequest(request.method, request.path, request.query, request.headers, b"")
        )
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(upload, web.FileField) or not isinstance(purpose, str):
            return errors.invalid_request("'file' and 'purpose' are required", param="file")
        meta = self.store.add_file(self.state, upload.file.read(), upload.filename, purpose)
        return json_response(msgspec.json.encode(meta))

    async def file_info(self, request: web.Request) -> web.StreamResponse:
        await record_request(request, self.state)
        found = _file(request, self.store)
        return (
            found
            if isinstance(found, web.Response)
            else json_response(msgspec.json.encode(found[0]))
        )

    async def file_content(self, request: web.Request) -> web.StreamResponse:
        await record_request(request, self.state)
        found = _file(request, self.store)
        if isinstance(found, web.Response):
            return found
        return web.Response(body=found[1], content_type="application/octet-stream")

    async def delete_file(self, request: web.Request) -> web.StreamResponse:
        await record_request(request, self.state)
        found = _file(request, self.store)
        if isinstance(found, web.Response):
            return found
        del self.store.files[found[0].id]
        return json_response(
            msgspec.json.encode({"id": found[0].id, "object": "file", "deleted": True})
        )

    async def create(self, request: web.Request) -> web.StreamResponse:
        raw = await record_request(request, self.state)
        denied = _denied(request, self.state)
        if denied is not None:
            return denied
        try:
            body = msgspec.json.decode(raw, type=_CreateBatch)
        except msgspec.DecodeError as exc:
            return errors.invalid_request(f"Invalid request body: {exc}")
        if body.endpoint not in ENDPOINTS:
            return errors.invalid_request("Invalid 'endpoint'", param="endpoint")
        if body.completion_window != "24h":
            return errors.invalid_request("Invalid 'completion_window'", param="completion_window")
        found = self.store.files.get(body.input_file_id)
        if found is None or found[0].purpose != "batch":
            return errors.invalid_request("Invalid 'input_file_id'", param="input_file_id")
        lines = _lines(found[1], body.endpoint)
        if isinstance(lines, str):
            return errors.invalid_request(lines, param="input_file_id")
        now = int(time.time())
        batch = _Batch(
            id=f"batch_{next(self.state.ids):024x}",
            endpoint=body.endpoint,
            input_file_id=body.input_file_id,
            completion_window=body.completion_window,
            created_at=now,
            expires_at=now + 86400,
            request_counts=_Counts(total=len(lines)),
            metadata=body.metadata,
        )
        self.store.batches[batch.id] = batch
        base = f"{request.scheme}://{request.host}"
        headers = {"Authorization": request.headers["Authorization"]}
        self.state.spawn(
            _run(self.state, self.store, batch, base, headers, lines), name=f"fake {batch.id}"
        )
        answer = json_response(msgspec.json.encode(batch))  # as made, before it runs
        await asyncio.sleep(self.state.timing.batch_answer_delay_s)
        return answer

    async def retrieve(self, request: web.Request) -> web.StreamResponse:
        await record_request(request, self.state)
        batch = _batch(request, self.store)
        return (
            batch if isinstance(batch, web.Response) else json_response(msgspec.json.encode(batch))
        )

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        await record_request(request, self.state)
        batch = _batch(request, self.store)
        if isinstance(batch, web.Response):
            return batch
        if batch.status in TERMINAL:
            if batch.status == "cancelled":
                return json_response(msgspec.json.encode(batch))
            return errors.invalid_request(f"Cannot cancel a batch with status {batch.status}.")
        batch.status = "cancelling"
        batch.cancelling_at = int(time.time())
        return json_response(msgspec.json.encode(batch))

    async def list_batches(self, request: web.Request) -> web.StreamResponse:
        await record_request(request, self.state)
        data = sorted(self.store.batches.values(), key=lambda b: b.id, reverse=True)
        page: dict[str, Any] = {
            "object": "list",
            "data": data,
            "has_more": False,
            "first_id": data[0].id if data else None,
            "last_id": data[-1].id if data else None,
        }
        return json_response(msgspec.json.encode(page))


def routes(state: FakeState) -> list[web.RouteDef]:
    api = _Api(state)
    return [
        web.post("/v1/files", api.upload),
        web.get("/v1/files/{file_id}", api.file_info),
        web.get("/v1/files/{file_id}/content", api.file_content),
        web.delete("/v1/files/{file_id}", api.delete_file),
        web.post("/v1/batches", api.create),
        web.get("/v1/batches", api.list_batches),
        web.get("/v1/batches/{batch_id}", api.retrieve),
        web.post("/v1/batches/{batch_id}/cancel", api.cancel),
    ]


def _denied(request: web.Request, state: FakeState) -> web.Response | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        return errors.openai_missing_key()
    return None if state.accepts_key(key) else errors.openai_invalid_key(key)


def _not_found(what: str, name: str) -> web.Response:
    body = {
        "error": {
            "message": f"No {what} found with id '{name}'.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    return json_response(msgspec.json.encode(body), status=404)


def _file(request: web.Request, store: _Store) -> tuple[_File, bytes] | web.Response:
    name = request.match_info["file_id"]
    found = store.files.get(name)
    return found if found is not None else _not_found("file", name)


def _batch(request: web.Request, store: _Store) -> _Batch | web.Response:
    name = request.match_info["batch_id"]
    found = store.batches.get(name)
    return found if found is not None else _not_found("batch", name)


def _lines(content: bytes, endpoint: str) -> list[LineCall] | str:
    """The input file's requests, or what is wrong with it (OpenAI refuses a bad file)."""
    lines: list[LineCall] = []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            parsed = msgspec.json.decode(line, type=_InputLine)
        except msgspec.DecodeError as exc:
            return f"line {number}: {exc}"
        if parsed.url != endpoint:
            return f"line {number}: the url must be the batch's endpoint"
        lines.append(LineCall(parsed.custom_id, parsed.url, bytes(parsed.body)))
    return lines or "the input file is empty"


async def _run(
    state: FakeState,
    store: _Store,
    batch: _Batch,
    base: str,
    headers: dict[str, str],
    lines: list[LineCall],
) -> None:
    batch.status = "in_progress"
    batch.in_progress_at = int(time.time())
    good: list[bytes] = []
    bad: list[bytes] = []

    def on_result(result: LineResult) -> None:
        line = {
            "id": f"batch_req_{next(state.ids):024x}",
            "custom_id": result.custom_id,
            "response": {
                "status_code": result.status,
                "request_id": result.request_id,
                "body": msgspec.Raw(result.body),
            },
            "error": None,
        }
        (good if result.status == 200 else bad).append(msgspec.json.encode(line) + b"\n")
        counts = batch.request_counts
        if result.status == 200:
            counts.completed += 1
        else:
            counts.failed += 1

    await run_lines(
        state,
        base,
        headers,
        lines,
        is_cancelled=lambda: batch.status == "cancelling",
        on_result=on_result,
    )
    if good:
        batch.output_file_id = store.add_file(
            state, b"".join(good), "output.jsonl", "batch_output"
        ).id
    if bad:
        batch.error_file_id = store.add_file(
            state, b"".join(bad), "errors.jsonl", "batch_output"
        ).id
    now = int(time.time())
    if batch.status == "cancelling":
        batch.status, batch.cancelled_at = "cancelled", now
    else:
        batch.status, batch.completed_at = "completed", now
