"""The OpenAI fake's Responses API (`/v1/responses`), proven by the official `openai` SDK:
the response object and every stream event parse into the SDK's own types."""

from __future__ import annotations

import openai
import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseTextDeltaEvent,
)


async def test_whole_response_is_parsed_with_usage(fake, client):
    reply = await client.responses.create(
        model="gpt-4o", input="Capital of France?", instructions="Be brief."
    )
    assert reply.object == "response" and reply.status == "completed"
    assert reply.output_text == "This is a fake reply from gpt-4o."
    assert reply.model == "gpt-4o-2024-08-06"
    assert reply.instructions == "Be brief."
    usage = reply.usage
    assert usage is not None
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    request = fake.requests[-1]
    assert (request.method, request.path) == ("POST", "/v1/responses")


async def test_stream_events_are_parsed_in_order_with_sequence_numbers(client):
    stream = await client.responses.create(
        model="gpt-4o~cached=16~reasoning=8",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        stream=True,
    )
    events = [event async for event in stream]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert isinstance(events[0], ResponseCreatedEvent)
    assert [e.type for e in events[1:4]] == [
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    deltas = [e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)]
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent)
    assert "".join(deltas) == final.response.output_text
    usage = final.response.usage
    assert usage is not None
    assert usage.input_tokens_details.cached_tokens == 16
    assert usage.output_tokens_details.reasoning_tokens == 8


async def test_a_tools_scenario_streams_function_calls_the_sdk_parses(client):
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    async with client.responses.stream(
        model="gpt-4o~tools=2", input="Weather in Paris?", tools=[tool]
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    calls = [item for item in final.output if item.type == "function_call"]
    assert [c.name for c in calls] == ["lookup", "lookup"]
    assert len({c.call_id for c in calls}) == 2 and calls[0].arguments.startswith("{")
    whole = await client.responses.create(
        model="gpt-4o~tools=1", input="Weather in Paris?", tools=[tool]
    )
    assert [item.type for item in whole.output] == ["function_call"]


async def test_a_failing_scenario_is_openais_error(client):
    with pytest.raises(openai.RateLimitError):
        await client.responses.create(model="gpt-4o~status=429", input="hi")
