"""`background: true` on the translated /v1/responses path, through the whole service with
the official `openai` SDK: answered `queued` at once, run by a worker like any request,
polled with GET to `completed` (or `failed`), cancelled through the queue with
`responses.cancel` (and never overwritten by the worker afterwards); what it cannot be
combined with is a clear 400, and another key's id is a 404. With `stream: true` it streams
as OpenAI's does: the client may leave and resume with `starting_after`."""

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
        with pytest.raises(openai.BadRequestError):
            await sdk.responses.create(model="translated", input="hi", background=True, store=False)


async def test_a_background_response_streams_like_openais(fake, namespace):
    async with gateway(fake, namespace) as (sdk, _):
        stream = await sdk.responses.create(
            model="translated", input="Say hello", background=True, stream=True
        )
        events = [event async for event in stream]
        created, done = events[0], events[-1]
        assert created.type == "response.created" and created.response.background is True
        assert done.type == "response.completed" and done.response.id == created.response.id
        assert [e.sequence_number for e in events] == list(range(len(events)))
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert text == done.response.output_text
        stored = await sdk.responses.retrieve(created.response.id)
        assert stored.status == "completed" and stored.output_text == text


async def test_a_stream_left_midway_runs_on_and_resumes_after_a_sequence_number(fake, namespace):
    """The client leaves after a few events; the response still completes, and
    GET ?stream=true&starting_after=N gives every event after N, on to the end."""
    async with gateway(fake, namespace) as (sdk, other):
        stream = await sdk.responses.create(
            model="translated-trickle", input="Say hello", background=True, stream=True
        )
        first: list[Any] = []
        async for event in stream:
            first.append(event)
            if event.sequence_number == 4:
                break
        await stream.close()
        response_id = first[0].response.id
        resumed = await sdk.responses.retrieve(response_id, stream=True, starting_after=4)
        rest = [event async for event in resumed]
        assert [e.sequence_number for e in rest] == list(range(5, 5 + len(rest)))
        assert rest[-1].type == "response.completed"
        deltas = [e.delta for e in first + rest if e.type == "response.output_text.delta"]
        assert "".join(deltas) == rest[-1].response.output_text
        # Once it ended, its whole stream can still be read again, and only by its key.
        again = await sdk.responses.retrieve(response_id, stream=True)
        assert [e.sequence_number async for e in again][0] == 0
        with pytest.raises(openai.NotFoundError):
            await other.responses.retrieve(response_id, stream=True)


async def test_a_streaming_background_response_can_be_cancelled(fake, namespace):
    async with gateway(fake, namespace) as (sdk, _):
        stream = await sdk.responses.create(
            model="translated-trickle", input="Long job", background=True, stream=True
        )
        created = await anext(aiter(stream))
        cancelled = await sdk.responses.cancel(created.response.id)
        assert cancelled.status == "cancelled"
        await stream.close()
        assert (await sdk.responses.retrieve(created.response.id)).status == "cancelled"


async def test_only_a_streamed_background_response_streams(fake, namespace):
    async with gateway(fake, namespace) as (sdk, _):
        queued = await sdk.responses.create(model="translated", input="hi", background=True)
        await settled(sdk, queued.id)
        with pytest.raises(openai.BadRequestError, match="stream"):
            await sdk.responses.retrieve(queued.id, stream=True)
        with pytest.raises(openai.BadRequestError, match="starting_after"):
            await sdk.responses.retrieve(queued.id, stream=True, starting_after=-5)
