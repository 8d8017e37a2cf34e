"""The OpenAI wire types: what they encode and what they accept."""

from __future__ import annotations

import msgspec

from workers.wire import (
    ChatCompletion,
    Choice,
    FunctionCall,
    ToolCall,
    assistant_message,
    decode_chat_request,
    encode,
)


def test_an_answer_s_tool_calls_say_they_are_functions():
    # OpenAI always sends `"type": "function"`; strict clients and a next turn sent to OpenAI
    # itself (which requires it) need it. omit_defaults once dropped it from native answers.
    call = ToolCall(id="call_1", function=FunctionCall(name="get_weather", arguments="{}"))
    answer = ChatCompletion(
        id="chatcmpl-1",
        created=0,
        model="m",
        choices=[Choice(message=assistant_message(None, tool_calls=[call]))],
    )
    [encoded] = msgspec.json.decode(encode(answer))["choices"][0]["message"]["tool_calls"]
    assert encoded == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }


def test_a_request_s_tool_call_may_leave_out_its_type():
    body = (
        b'{"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": '
        b'[{"id": "call_1", "function": {"name": "f", "arguments": "{}"}}]}]}'
    )
    [call] = decode_chat_request(body).messages[0].tool_calls or []
    assert call.type == "function"
