"""How the batch fakes (openai_batches.py, anthropic_batches.py) run a batch's lines: each
as a request to the same fake server's own endpoint, so a line behaves exactly as the
interactive request would (its model name's scenario, failures and latency included).

The lines run one after another, so a test can cancel a batch midway (a `latency=`
directive on the model paces them); a cancel stops before the next line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import msgspec

from workers.testing.state import FakeState


class LineCall(msgspec.Struct, frozen=True):
    custom_id: str
    path: str  # the fake's own endpoint, e.g. /v1/chat/completions
    body: bytes


class LineResult(msgspec.Struct, frozen=True):
    custom_id: str
    status: int
    body: bytes
    request_id: str


async def run_lines(
    state: FakeState,
    base_url: str,
    headers: dict[str, str],
    lines: list[LineCall],
    *,
    is_cancelled: Callable[[], bool],
    on_result: Callable[[LineResult], None],
) -> None:
    """Wait the server's batch delay, then run each line until a cancel."""
    if state.timing.batch_delay_s > 0:
        await asyncio.sleep(state.timing.batch_delay_s)
    sent = {**headers, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for line in lines:
            if is_cancelled():
                return
            async with session.post(base_url + line.path, data=line.body, headers=sent) as reply:
                body = await reply.read()
                request_id = reply.headers.get("x-request-id") or reply.headers.get("request-id")
                on_result(LineResult(line.custom_id, reply.status, body, request_id or ""))
