"""Every field of the two ingress APIs is carried into the chat wire model or refused by
name (issue #18: never a silent drop), and with drop_params a refusal becomes a drop."""

from __future__ import annotations

from typing import Any

import pytest

from workers.errors import InvalidRequest, UnsupportedParams
from workers.ingress.messages_request import to_chat_body as messages_to_chat
from workers.ingress.responses_request import pack_reasoning
from workers.ingress.responses_request import to_chat_body as responses_to_chat
from workers.wire import chat_request_from_dict

HELLO = [{"role": "user", "content": "hi"}]
MESSAGES_BASE: dict[str, Any] = {"model": "m", "max_tokens": 10, "messages": HELLO}
PDF = "data:application/pdf;base64,JVBERi0="

# Messages field -> (value, what the chat body holds for it)
MESSAGES_CARRIED: list[tuple[str, Any, dict[str, Any]]] = [
    ("max_tokens", 77, {"max_tokens": 77}),
    ("stop_sequences", ["END"], {"stop": ["END"]}),
    ("temperature", 0.3, {"temperature": 0.3}),
    ("top_p", 0.9, {"top_p": 0.9}),
    ("top_k", 5, {"top_k": 5}),
    (
        "thinking",
        {"type": "enabled", "budget_tokens": 1024},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
    ),
    ("metadata", {"user_id": "u"}, {"user": "u"}),
    ("service_tier", "auto", {"service_tier": "auto"}),
    ("stream", True, {"stream": True, "stream_options": {"include_usage": True}}),
    ("tool_choice", {"type": "any"}, {"tool_choice": "required"}),
    (
        "tool_choice",
        {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        {
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "parallel_tool_calls": False,
        },
    ),
]


@pytest.mark.parametrize(("field", "value", "expected"), MESSAGES_CARRIED)
def test_messages_fields_are_carried(field: str, value: Any, expected: dict[str, Any]) -> None:
    chat = messages_to_chat({**MESSAGES_BASE, field: value}, drop_params=False)
    for key, want in expected.items():
        assert chat[key] == want
    chat_request_from_dict(chat)  # and the result is a valid chat request


def test_messages_content_blocks_translate_both_ways() -> None:
    body = {
        **MESSAGES_BASE,
        "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
        "tools": [
            {
                "name": "f",
                "input_schema": {"type": "object"},
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "ok"}],
                    },
                    {"type": "text", "text": "go on"},
                ],
            },
        ],
    }
    chat = messages_to_chat(body, drop_params=False)
    system, user, assistant, tool, last = chat["messages"]
    assert system["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert [p["type"] for p in user["content"]] == ["text", "image_url", "text"]
    assert user["content"][1]["image_url"]["url"] == "data:image/png;base64,AA=="
    assert assistant["thinking_blocks"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    ]
    assert assistant["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":1}'}
    assert tool == {"role": "tool", "tool_call_id": "t1", "content": "ok"}  # results first
    assert last["content"][0]["text"] == "go on"
    assert chat["tools"][0]["cache_control"] == {"type": "ephemeral"}
    chat_request_from_dict(chat)


MESSAGES_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"container": "c"}, "container"),
    ({"mcp_servers": []}, "mcp_servers"),
    (
        {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        "tools.web_search_20250305",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "search_result", "source": "s"}]}]},
        "messages.content.search_result",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "document", "source": {"type": "url", "url": "u"}}],
                }
            ]
        },
        "messages.content.document",
    ),
]


@pytest.mark.parametrize(("extra", "param"), MESSAGES_REFUSED)
def test_messages_fields_without_a_translation_are_refused_by_name(
    extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(UnsupportedParams) as refused:
        messages_to_chat({**MESSAGES_BASE, **extra}, drop_params=False)
    assert refused.value.param == param
    messages_to_chat({**MESSAGES_BASE, **extra}, drop_params=True)  # dropped instead


RESPONSES_CARRIED: list[tuple[str, Any, dict[str, Any]]] = [
    (
        "instructions",
        "be brief",
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ]
        },
    ),
    ("max_output_tokens", 50, {"max_completion_tokens": 50}),
    ("temperature", 0.2, {"temperature": 0.2}),
    ("top_p", 0.5, {"top_p": 0.5}),
    ("top_logprobs", 3, {"logprobs": True, "top_logprobs": 3}),
    ("parallel_tool_calls", False, {"parallel_tool_calls": False}),
    ("user", "u", {"user": "u"}),
    ("safety_identifier", "s", {"safety_identifier": "s"}),
    ("prompt_cache_key", "k", {"prompt_cache_key": "k"}),
    ("service_tier", "flex", {"service_tier": "flex"}),
    ("reasoning", {"effort": "high", "summary": "auto"}, {"reasoning_effort": "high"}),
    ("tool_choice", "required", {"tool_choice": "required"}),
    (
        "tool_choice",
        {"type": "function", "name": "f"},
        {"tool_choice": {"type": "function", "function": {"name": "f"}}},
    ),
    ("text", {"format": {"type": "json_object"}}, {"response_format": {"type": "json_object"}}),
    (
        "text",
        {
            "format": {
                "type": "json_schema",
                "name": "n",
                "schema": {"type": "object"},
                "strict": True,
            },
            "verbosity": "low",
        },
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": True},
            },
            "verbosity": "low",
        },
    ),
    (
        "tools",
        [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        {
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
            ]
        },
    ),
    ("stream", True, {"stream": True, "stream_options": {"include_usage": True}}),
]


@pytest.mark.parametrize(("field", "value", "expected"), RESPONSES_CARRIED)
def test_responses_fields_are_carried(field: str, value: Any, expected: dict[str, Any]) -> None:
    chat = responses_to_chat({"model": "m", "input": "hi", field: value}, [], drop_params=False)
    for key, want in expected.items():
        assert chat[key] == want
    chat_request_from_dict(chat)


def test_responses_items_and_history_translate_in_order() -> None:
    blocks = [{"type": "thinking", "thinking": "t", "signature": "s"}]
    history: list[dict[str, Any]] = [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "weather?"}],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "t"}],
            "encrypted_content": pack_reasoning(blocks),
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    ]
    body = {
        "model": "m",
        "input": [
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {
                "role": "user",
                "content": [
                    {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                    {"type": "input_file", "filename": "a.pdf", "file_data": PDF, "extra": 1},
                ],
            },
        ],
    }
    chat = responses_to_chat(body, history, drop_params=False)
    user, assistant, tool, image = chat["messages"]
    assert user["content"] == [{"type": "text", "text": "weather?"}]
    assert assistant["thinking_blocks"] == blocks and assistant["reasoning_content"] == "t"
    assert assistant["tool_calls"][0]["id"] == "c1"
    assert tool == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    assert image["content"][0]["image_url"] == {"url": "https://x/y.png", "detail": "low"}
    # A file goes on as chat's file part (each adapter carries or refuses it).
    assert image["content"][1] == {"type": "file", "file": {"filename": "a.pdf", "file_data": PDF}}
    chat_request_from_dict(chat)


RESPONSES_REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"tools": [{"type": "web_search"}]}, "tools.web_search"),
    ({"tools": [{"type": "file_search", "vector_store_ids": []}]}, "tools.file_search"),
    ({"background": True}, "background"),
    ({"truncation": "auto"}, "truncation"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"prompt": {"id": "p"}}, "prompt"),
    ({"max_tool_calls": 3}, "max_tool_calls"),
    ({"tool_choice": {"type": "web_search"}}, "tool_choice.web_search"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.item_reference"),
    (
        {"input": [{"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-openai"}]},
        "encrypted_content",
    ),
]


@pytest.mark.parametrize(("extra", "param"), RESPONSES_REFUSED)
def test_responses_fields_without_a_translation_are_refused_by_name(
    extra: dict[str, Any], param: str
) -> None:
    body = {"model": "m", "input": "hi", **extra}
    with pytest.raises(UnsupportedParams) as refused:
        responses_to_chat(body, [], drop_params=False)
    assert refused.value.param == param
    responses_to_chat(body, [], drop_params=True)


def test_a_bad_item_is_a_400_not_a_500() -> None:
    with pytest.raises(InvalidRequest):
        responses_to_chat(
            {"model": "m", "input": [{"role": "robot", "content": "x"}]}, [], drop_params=False
        )
    with pytest.raises(InvalidRequest):
        responses_to_chat(
            {"model": "m", "text": {"format": {"type": "yaml"}}}, [], drop_params=False
        )


def test_a_reasoning_items_text_is_carried_when_it_has_no_summary() -> None:
    item = {
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "r"}],
    }
    chat = responses_to_chat(
        {"model": "m", "input": [item, {"role": "user", "content": "x"}]}, [], drop_params=False
    )
    assert chat["messages"][0]["reasoning_content"] == "r"
