"""A batch on Anthropic's Message Batches API (issue #20's native mode): each chat line
translated to Messages params by the interactive adapter's own request translation
(workers/providers/anthropic/request.py), sent as `POST /v1/messages/batches` with
`requests: [{custom_id, params}]`, polled, and each result translated back to an OpenAI
chat completion (or error) body by the adapter's response translation.

The results are read from `{api_base}/v1/messages/batches/{id}/results`, built from the
deployment, never from the `results_url` the answer names: the only URLs fetched are
the configured deployment's.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import msgspec
import orjson

from broker.batches.lines import split_lines
from broker.batches.native_results import Look, Result
from workers import wire
from workers.deployment import Deployment
from workers.errors import ProviderError
from workers.http import HttpClient, transport_errors
from workers.params import GATEWAY_FIELDS
from workers.providers.anthropic import AnthropicAdapter
from workers.providers.anthropic.errors import classify, error_from_response
from workers.providers.anthropic.request import build_body
from workers.providers.anthropic.response import parse_completion
from workers.providers.base import ChatCall
from workers.validation import decode_request
from workers.wire import chat_request_from_dict

# Batches listed per page (Anthropic's most), and the pages read back in time at most.
LIST_LIMIT = 1000
MAX_LIST_PAGES = 20
# How far the provider's clock may be behind ours.
CLOCK_SKEW_S = 120
# A result line holds one response (at most the reply cap) plus its wrapping.
LINE_SLACK = 64 * 1024
# Anthropic's error types -> the HTTP status the interactive call would have had.
ERROR_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class _Batch(msgspec.Struct):
    id: str
    processing_status: str


class _Counts(msgspec.Struct):
    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0

    @property
    def total(self) -> int:
        return self.processing + self.succeeded + self.errored + self.canceled + self.expired


class _Listed(msgspec.Struct):
    id: str
    created_at: str
    request_counts: _Counts = msgspec.field(default_factory=_Counts)


class _Page(msgspec.Struct):
    data: list[_Listed]
    has_more: bool = False
    last_id: str | None = None


class _ErrorObject(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class _ErrorBody(msgspec.Struct):
    error: _ErrorObject = msgspec.field(default_factory=_ErrorObject)


NULL = msgspec.Raw(b"null")


class _Outcome(msgspec.Struct):
    type: str
    message: msgspec.Raw = NULL  # msgspec.Raw takes no union with None
    error: _ErrorBody | None = None


class _Line(msgspec.Struct):
    custom_id: str
    result: _Outcome


_decode_batch = msgspec.json.Decoder(_Batch).decode
_decode_page = msgspec.json.Decoder(_Page).decode
_decode_line = msgspec.json.Decoder(_Line).decode


async def _requests(lines: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`{"requests": [...]}` written as the lines are read (the body is streamed)."""
    yield b'{"requests":['
    separator = b""
    async for line in lines:
        yield separator + line
        separator = b","
    yield b"]}"


def _unix_s(moment: str) -> float | None:
    """An RFC 3339 time (Anthropic's `created_at`) in unix seconds."""
    try:
        return datetime.datetime.fromisoformat(moment).timestamp()
    except ValueError:
        return None


class AnthropicBatches:
    marks_batches = False  # a Message Batch takes no metadata

    def __init__(self, deployment: Deployment, http: HttpClient, endpoint: str) -> None:
        self.adapter = AnthropicAdapter(deployment, http)
        self.http = http
        self.url = self.adapter.url + "/batches"  # {api_base}/v1/messages/batches
        # /v1/messages lines are Anthropic's own requests: sent and answered as they are.
        self.is_messages = endpoint == "/v1/messages"

    def line(self, custom_id: str, body: bytes) -> bytes:
        """One request of the batch (`{custom_id, params}`); a parameter Anthropic cannot
        take raises, as the interactive call would."""
        raw: dict[str, Any] = orjson.loads(body)
        drop = bool(raw.get("drop_params"))
        for name in GATEWAY_FIELDS:
            raw.pop(name, None)
        if self.is_messages:
            model = self.adapter.model
            params = {**self.adapter.deployment.default_params, **raw, "model": model}
            return orjson.dumps({"custom_id": custom_id, "params": params})
        request = decode_request(chat_request_from_dict, raw)
        call = ChatCall(request=request, body=raw, drop_params=drop)
        adapter = self.adapter
        params = build_body(call, adapter.deployment, adapter.refuser(call), stream=False)
        return orjson.dumps({"custom_id": custom_id, "params": params})

    async def _call(self, method: str, url: str, data: AsyncIterator[bytes] | None = None) -> bytes:
        adapter = self.adapter
        with transport_errors(adapter.provider, adapter.model):
            async with self.http.session.request(
                method, url, data=data, headers=adapter.headers
            ) as response:
                raw = await self.http.read_body(response, adapter.provider, adapter.model)
                if response.status >= 400:
                    raise error_from_response(
                        response.status, response.headers, raw, model=adapter.model
                    )
                return raw

    async def find(self, batch_id: str, since_s: int, lines: int | None) -> list[str]:
        """A Message Batch carries nothing of ours to know it by: the candidates are the
        batches of `lines` requests created since the call went out (newest first in the
        listing, so the listing is read back to that moment only). Submits to one
        deployment are made one at a time (native_poll.py), so no other batch of ours
        made one then; those adopted by another batch are left out by the caller."""
        if lines is None:  # recorded before the count was: nothing to go by
            return []
        earliest = since_s - CLOCK_SKEW_S
        found: list[tuple[float, str]] = []
        after: str | None = None
        for _ in range(MAX_LIST_PAGES):
            cursor = f"&after_id={quote(after)}" if after else ""
            page = _decode_page(await self._call("GET", f"{self.url}?limit={LIST_LIMIT}{cursor}"))
            for listed in page.data:
                created = _unix_s(listed.created_at)
                if created is None:
                    continue
                if created < earliest:
                    return [batch for _, batch in sorted(found)]
                if listed.request_counts.total == lines:
                    found.append((created, listed.id))
            if not page.has_more or page.last_id is None:
                break
            after = page.last_id
        return [batch for _, batch in sorted(found)]

    async def submit(self, batch_id: str, lines: AsyncIterator[bytes]) -> str:
        return _decode_batch(await self._call("POST", self.url, _requests(lines))).id

    async def look(self, provider_id: str) -> Look:
        batch = _decode_batch(await self._call("GET", f"{self.url}/{provider_id}"))
        return Look(batch.processing_status, batch.processing_status == "ended")

    async def cancel(self, provider_id: str) -> None:
        await self._call("POST", f"{self.url}/{provider_id}/cancel")

    async def results(self, provider_id: str) -> AsyncIterator[Result]:
        adapter = self.adapter
        provider, model = adapter.provider, adapter.model
        url = f"{self.url}/{provider_id}/results"
        with transport_errors(provider, model):
            async with self.http.session.get(url, headers=adapter.headers) as response:
                if response.status >= 400:
                    raw = await self.http.read_body(response, provider, model)
                    raise error_from_response(response.status, response.headers, raw, model=model)
                # The file holds every line's response: the reply cap bounds each line
                # (split_lines refuses a longer one), not the whole file.
                chunks = response.content.iter_any()
                async for line in split_lines(chunks, self.http.max_reply_bytes + LINE_SLACK):
                    if line.strip():
                        yield self._result(line)

    def _result(self, line: bytes) -> Result:
        model = self.adapter.model
        try:
            parsed = _decode_line(line)
        except msgspec.DecodeError as exc:
            raise ProviderError(f"anthropic sent a batch result that is not one: {exc}") from exc
        outcome = parsed.result
        if outcome.type == "succeeded" and bytes(outcome.message) != b"null":
            message = bytes(outcome.message)
            completion = parse_completion(message, model=model)
            return Result(
                custom_id=parsed.custom_id,
                status=200,
                body=message if self.is_messages else wire.encode(completion),
                request_id=completion.id,
                usage=completion.usage,
            )
        if outcome.type == "errored":
            error = (outcome.error or _ErrorBody()).error
            status = ERROR_STATUS.get(error.type, 500)
            failure = classify(status, error.type, error.message or error.type, model=model)
            body = failure.to_json()
            if self.is_messages:  # the error as Anthropic's API says it
                body = orjson.dumps({"type": "error", "error": msgspec.to_builtins(error)})
            return Result(custom_id=parsed.custom_id, status=failure.http_status, body=body)
        # canceled or expired: the line never ran.
        return Result(
            custom_id=parsed.custom_id,
            error_code=f"batch_{outcome.type}",
            error_message=f"the provider's batch ended with this request {outcome.type}",
        )
