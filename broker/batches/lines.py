"""A batch input file's lines: split from the store's chunks without holding the file,
and each line parsed and checked as the endpoint's own request would be."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import msgspec

from broker.auth import Caller
from broker.body import decode
from broker.frontdoor import FrontDoor
from workers.body_limits import check_json_bytes
from workers.envelopes import KIND_CHAT, KIND_EMBEDDING
from workers.errors import InvalidRequest, SwitchboardError
from workers.validation import RequestLimits, validate_chat_request, validate_embedding_request
from workers.wire import decode_chat_request, decode_embedding_request

MAX_CUSTOM_ID_CHARS = 512
# Bad lines named in one refusal; the rest are counted.
MAX_REPORTED = 10
YIELD_EVERY = 32


class Endpoint(msgspec.Struct, frozen=True):
    kind: int
    check: Callable[[bytes, RequestLimits], str]  # the body's model; raises on a bad body


def _check_chat(body: bytes, limits: RequestLimits) -> str:
    chat = decode(decode_chat_request, body)
    validate_chat_request(chat, limits)
    if chat.is_stream:
        raise InvalidRequest("a batch line cannot stream: drop `stream`", param="body.stream")
    return chat.model


def _check_embedding(body: bytes, limits: RequestLimits) -> str:
    embedding = decode(decode_embedding_request, body)
    validate_embedding_request(embedding, limits)
    return embedding.model


# The endpoints a batch may name. /v1/responses and /v1/messages join once the front door
# serves them (issues #18, #20).
ENDPOINTS = {
    "/v1/chat/completions": Endpoint(KIND_CHAT, _check_chat),
    "/v1/embeddings": Endpoint(KIND_EMBEDDING, _check_embedding),
}


class InputLine(msgspec.Struct):
    custom_id: str
    method: str
    url: str
    body: msgspec.Raw


decode_input_line = msgspec.json.Decoder(InputLine).decode


async def split_lines(chunks: AsyncIterator[bytes], max_line_bytes: int) -> AsyncIterator[bytes]:
    """The lines of a chunk stream (without their newline; blank ones kept, so numbering
    matches the file). A line longer than `max_line_bytes` is refused."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for line in whole:
            yield line
        if len(pending) > max_line_bytes:
            raise LineTooLong()
    if pending:
        yield pending


class LineTooLong(Exception):
    pass


def parse_line(line: bytes, endpoint: str) -> InputLine:
    """One line as the runner and the check read it; InvalidRequest naming what is wrong."""
    try:
        parsed = decode_input_line(line)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidRequest(f"not a batch request line ({exc})") from None
    if not parsed.custom_id or len(parsed.custom_id) > MAX_CUSTOM_ID_CHARS:
        raise InvalidRequest(f"`custom_id` must have 1 to {MAX_CUSTOM_ID_CHARS} characters")
    if parsed.method != "POST":
        raise InvalidRequest("`method` must be `POST`")
    if parsed.url != endpoint:
        raise InvalidRequest(f"`url` must be the batch's endpoint, `{endpoint}`")
    return parsed


class Checked(msgspec.Struct):
    lines: int


async def check_input(
    chunks: AsyncIterator[bytes], endpoint: str, front: FrontDoor, caller: Caller
) -> Checked:
    """Every line checked as its own request would be (shape, model access, limits); a file
    with bad lines is refused naming each (up to ten) by its line number."""
    settings = front.settings
    problems: list[str] = []
    seen: set[str] = set()
    count = 0
    number = 0
    try:
        async for line in split_lines(chunks, settings.max_body_bytes):
            number += 1
            if not line.strip():
                continue
            count += 1
            if count % YIELD_EVERY == 0:
                # A 50,000-line check must not hold the front door's loop (the requests it
                # relays meanwhile) for its whole length.
                await asyncio.sleep(0)
            problem = _problem(line, endpoint, front, caller, seen)
            if problem is not None:
                problems.append(f"line {number}: {problem}")
            if count > settings.batches.max_lines:
                problems.append(f"more than {settings.batches.max_lines} lines")
                break
    except LineTooLong:
        problems.append(f"line {number + 1}: longer than {settings.max_body_bytes} bytes")
    if count == 0 and not problems:
        problems.append("the input file has no request lines")
    if problems:
        shown = problems[:MAX_REPORTED]
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise InvalidRequest(
            "the input file has invalid lines: " + "; ".join(shown) + more,
            param="input_file_id",
            code="invalid_batch_input",
        )
    return Checked(lines=count)


def _problem(
    line: bytes, endpoint: str, front: FrontDoor, caller: Caller, seen: set[str]
) -> str | None:
    try:
        parsed = parse_line(line, endpoint)
        if parsed.custom_id in seen:
            return f"`custom_id` {ascii(parsed.custom_id[:64])} is used twice"
        seen.add(parsed.custom_id)
        body = bytes(parsed.body)
        check_json_bytes(body)
        model = ENDPOINTS[endpoint].check(body, front.limits)
        front.resolve_group(model, caller)
    except SwitchboardError as exc:
        return _message(exc)
    return None


def _message(exc: SwitchboardError) -> str:
    return exc.message + (f" (param `{exc.param}`)" if exc.param else "")
