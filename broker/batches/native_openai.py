"""A batch on OpenAI's own Batch API (issue #20's native mode): the lines uploaded to the
deployment's `/files` (purpose `batch`), a batch made of them at `/batches` (our batch id
in its metadata, so a runner that died before recording the provider's id finds it again
rather than submit twice), polled, then the output and error files read back.

Each line goes as the interactive OpenAI adapter would send it (the deployment's model
and default parameters, the gateway's own fields removed), so only the billing differs.
The URLs and the key are the deployment's; nothing a client names is fetched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import orjson

from broker.batches.lines import split_lines
from broker.batches.native_results import ENDED, Look, Result, usage_of
from workers.deployment import Deployment
from workers.errors import ProviderError
from workers.http import HttpClient, transport_errors
from workers.params import GATEWAY_FIELDS
from workers.providers.base import ChatCall
from workers.providers.openai import OpenAIAdapter
from workers.validation import decode_request
from workers.wire import chat_request_from_dict

METADATA_KEY = "switchboard_batch_id"
# OpenAI's only window; our own batch's window is enforced by its runner (a cancel).
WINDOW = "24h"
LIST_LIMIT = 100
# A result line holds one response (at most the reply cap) plus its wrapping.
LINE_SLACK = 64 * 1024


class _Batch(msgspec.Struct):
    id: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    metadata: dict[str, str] | None = None


class _Page(msgspec.Struct):
    data: list[_Batch]


class _File(msgspec.Struct):
    id: str


class _Response(msgspec.Struct):
    status_code: int
    body: msgspec.Raw
    request_id: str = ""


class _Error(msgspec.Struct):
    code: str | None = None
    message: str | None = None


class _Line(msgspec.Struct):
    custom_id: str
    response: _Response | None = None
    error: _Error | None = None


_decode_batch = msgspec.json.Decoder(_Batch).decode
_decode_page = msgspec.json.Decoder(_Page).decode
_decode_file = msgspec.json.Decoder(_File).decode
_decode_line = msgspec.json.Decoder(_Line).decode


def request_line(adapter: OpenAIAdapter, custom_id: str, endpoint: str, body: bytes) -> bytes:
    """The provider's input line for one of ours; a refused parameter raises (the line
    fails on its own, as it would interactively)."""
    raw: dict[str, Any] = orjson.loads(body)
    drop = bool(raw.get("drop_params"))
    for name in GATEWAY_FIELDS:
        raw.pop(name, None)
    if endpoint == "/v1/chat/completions":
        request = decode_request(chat_request_from_dict, raw)
        sent = adapter.chat_body(
            ChatCall(request=request, body=raw, drop_params=drop), stream=False
        )
    else:
        sent = {**adapter.deployment.default_params, **raw, "model": adapter.model}
    line = {"custom_id": custom_id, "method": "POST", "url": endpoint, "body": sent}
    return orjson.dumps(line)


class OpenAIBatches:
    marks_batches = True  # our batch id rides in the batch's metadata

    def __init__(self, deployment: Deployment, http: HttpClient, endpoint: str) -> None:
        self.adapter = OpenAIAdapter(deployment, http)
        self.http = http
        self.endpoint = endpoint
        self.base = self.adapter.base_url
        self.auth = {k: v for k, v in self.adapter.headers.items() if k.lower() != "content-type"}

    def line(self, custom_id: str, body: bytes) -> bytes:
        return request_line(self.adapter, custom_id, self.endpoint, body)

    async def _call(
        self, method: str, path: str, *, data: Any = None, json_body: Any = None
    ) -> bytes:
        headers = dict(self.auth)
        if json_body is not None:
            data = orjson.dumps(json_body)
            headers["Content-Type"] = "application/json"
        provider, model = self.adapter.provider, self.adapter.model
        with transport_errors(provider, model):
            async with self.http.session.request(
                method, self.base + path, data=data, headers=headers
            ) as response:
                raw = await self.http.read_body(response, provider, model)
                if response.status >= 400:
                    raise self.adapter.error(response, raw)
                return raw

    async def find(self, batch_id: str, since_s: int, lines: int | None) -> list[str]:
        raw = await self._call("GET", f"/batches?limit={LIST_LIMIT}")
        for batch in _decode_page(raw).data:
            if (batch.metadata or {}).get(METADATA_KEY) == batch_id:
                return [batch.id]
        return []

    async def submit(self, batch_id: str, lines: AsyncIterator[bytes]) -> str:
        # A crash between the two calls leaves an unused file at the provider, never a
        # second batch: find() adopts a batch that was made.
        file_id = await self._upload(batch_id, lines)
        return await self._create(batch_id, file_id)

    async def _upload(self, batch_id: str, lines: AsyncIterator[bytes]) -> str:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field(
            "file", _jsonl(lines), filename=f"{batch_id}.jsonl", content_type="application/jsonl"
        )
        return _decode_file(await self._call("POST", "/files", data=form)).id

    async def _create(self, batch_id: str, file_id: str) -> str:
        body = {
            "input_file_id": file_id,
            "endpoint": self.endpoint,
            "completion_window": WINDOW,
            "metadata": {METADATA_KEY: batch_id},
        }
        return _decode_batch(await self._call("POST", "/batches", json_body=body)).id

    async def look(self, provider_id: str) -> Look:
        batch = _decode_batch(await self._call("GET", f"/batches/{provider_id}"))
        return Look(batch.status, batch.status in ENDED)

    async def cancel(self, provider_id: str) -> None:
        await self._call("POST", f"/batches/{provider_id}/cancel")

    async def results(self, provider_id: str) -> AsyncIterator[Result]:
        batch = _decode_batch(await self._call("GET", f"/batches/{provider_id}"))
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                async for result in self._file_results(file_id):
                    yield result

    async def _file_results(self, file_id: str) -> AsyncIterator[Result]:
        provider, model = self.adapter.provider, self.adapter.model
        url = f"{self.base}/files/{file_id}/content"
        with transport_errors(provider, model):
            async with self.http.session.get(url, headers=self.auth) as response:
                if response.status >= 400:
                    raw = await self.http.read_body(response, provider, model)
                    raise self.adapter.error(response, raw)
                # The file holds every line's response: the reply cap bounds each line
                # (split_lines refuses a longer one), not the whole file.
                chunks = response.content.iter_any()
                async for line in split_lines(chunks, self.http.max_reply_bytes + LINE_SLACK):
                    if line.strip():
                        yield _result(line)


async def _jsonl(lines: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for line in lines:
        yield line + b"\n"


def _result(line: bytes) -> Result:
    try:
        parsed = _decode_line(line)
    except msgspec.DecodeError as exc:
        raise ProviderError(f"openai sent a batch result that is not one: {exc}") from exc
    response = parsed.response
    if response is None:
        error = parsed.error or _Error()
        return Result(
            custom_id=parsed.custom_id,
            error_code=error.code or "batch_failed",
            error_message=error.message or "the provider did not run this line",
        )
    body = bytes(response.body)
    return Result(
        custom_id=parsed.custom_id,
        status=response.status_code,
        body=body,
        request_id=response.request_id,
        usage=usage_of(body) if response.status_code == 200 else None,
    )
