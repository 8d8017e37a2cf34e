"""A batch input file's lines: split from the store's chunks without holding the file,
and each line parsed and checked as the endpoint's own request would be."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec

from broker.auth import Caller
from broker.batches.endpoints import ENDPOINTS
from broker.frontdoor import FrontDoor
from workers.body_limits import check_json_bytes
from workers.errors import InvalidRequest, SwitchboardError

MAX_CUSTOM_ID_CHARS = 512
# Bad lines named in one refusal; the rest are counted.
MAX_REPORTED = 10
YIELD_EVERY = 32


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
    # Model group -> the first model name that resolved to it (native mode's choice).
    groups: dict[str, str] = {}


async def check_input(
    chunks: AsyncIterator[bytes], endpoint: str, front: FrontDoor, caller: Caller
) -> Checked:
    """Every line checked as its own request would be (shape, model access, limits); a file
    with bad lines is refused naming each (up to ten) by its line number."""
    settings = front.settings
    problems: list[str] = []
    seen: set[str] = set()
    groups: dict[str, str] = {}
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
            problem = _problem(line, endpoint, front, caller, seen, groups)
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
    return Checked(lines=count, groups=groups)


def _problem(
    line: bytes,
    endpoint: str,
    front: FrontDoor,
    caller: Caller,
    seen: set[str],
    groups: dict[str, str],
) -> str | None:
    try:
        parsed = parse_line(line, endpoint)
        if parsed.custom_id in seen:
            return f"`custom_id` {ascii(parsed.custom_id[:64])} is used twice"
        seen.add(parsed.custom_id)
        body = bytes(parsed.body)
        check_json_bytes(body)
        request = ENDPOINTS[endpoint].check(body, front.limits)
        groups.setdefault(front.resolve_group(request.model, caller), request.model)
    except SwitchboardError as exc:
        return _message(exc)
    return None


def _message(exc: SwitchboardError) -> str:
    return exc.message + (f" (param `{exc.param}`)" if exc.param else "")
