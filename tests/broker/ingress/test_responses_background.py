"""`background: true` on the translated /v1/responses path, through the whole service with
the official `openai` SDK: answered `queued` at once, run by a worker like any request,
polled with GET to `completed` (or `failed`), cancelled through the queue with
`responses.cancel` (and never overwritten by the worker afterwards); what it cannot be
combined with is a clear 400, and another key's id is a 404."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from tests.broker.ingress.test_responses_held import gateway

POLL_S = 0.05


async def settled(sdk: Any, response_id: str) -> Any:
    """Poll until the response leaves queued and in_progress."""
    while True:
        response = await sdk.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress"):
            return response
        await asyncio.sleep(POLL_S)


async def test_a_background_response_is_queued_then_polled_to_completed(fake, namespace):
    async with gateway(fake, namespace) as (sdk, other):
        queued = await sdk.responses.create(
            model="translated", input="Say hello", background=True, metadata={"t": "1"}
        )
        assert queued.status == "queued" and queued.background is True
        assert queued.metadata == {"t": "1"}
        done = await settled(sdk, queued.id)
        assert done.status == "completed" and done.background is True
        assert done.output_text and done.usage.output_tokens > 0
        items = await sdk.responses.input_items.list(queued.id)
        assert [item.content[0].text for item in items.data] == ["Say hello"]
        # A follow-up of a background response is an ordinary one.
        after = await sdk.responses.create(
            model="translated", input="more", previous_response_id=queued.id
        )
        assert after.status == "completed"
        with pytest.raises(openai.BadRequestError, match="completed"):
            await sdk.responses.cancel(queued.id)
        with pytest.raises(openai.BadRequestError, match="background"):
            await sdk.responses.cancel(after.id)
        for attempt in (other.responses.retrieve(queued.id), other.responses.cancel(queued.id)):
            with pytest.raises(openai.NotFoundError):
                await attempt


async def test_cancel_stops_the_queued_request_and_stays_cancelled(fake, namespace):
    async with gateway(fake, namespace) as (sdk, _):
        queued = await sdk.responses.create(
            model="translated-slow", input="Long job", background=True
        )
        cancelled = await sdk.responses.cancel(queued.id)
        assert cancelled.status == "cancelled" and cancelled.id == queued.id
        # The worker's answer, had it come, may not overwrite the cancellation.
        await asyncio.sleep(3.5)
        assert (await sdk.responses.retrieve(queued.id)).status == "cancelled"


async def test_a_failed_background_response_is_stored_failed(fake, namespace):
    async with gateway(fake, namespace) as (sdk, _):
        queued = await sdk.responses.create(model="translated-429", input="hi", background=True)
        failed = await settled(sdk, queued.id)
        assert failed.status == "failed"
        assert failed.error is not None and failed.error.code == "rate_limit_exceeded"


async def test_what_background_cannot_combine_with_is_refused(fake, namespace):
    async with gateway(fake, namespace) as (sdk, _):
        for extra in ({"stream": True}, {"store": False}):
            with pytest.raises(openai.BadRequestError):
                await sdk.responses.create(model="translated", input="hi", background=True, **extra)
