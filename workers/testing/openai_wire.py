"""OpenAI-format request and response bodies exactly as the service sends them.

Shared by the OpenAI and Azure fakes (`ChatStyle` carries Azure's differences). These are not
`workers.wire`'s Structs on purpose: the fake must reproduce the provider's bytes, including
what the hub model leaves out (`"usage": null` on every chunk, `"refusal": null` in the first
delta, zero-valued token details), and must accept any body the real service accepts (Azure
bodies may omit `model`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from workers.testing.reply import ReplyPlan, ToolCallPlan
from workers.testing.streaming import sse_data

# --------------------------------------------------------------------------- requests


class _Part(msgspec.Struct):
    type: str = "text"
    text: str | None = None


class InputMessage(msgspec.Struct):
    role: str = "user"
    content: str | list[_Part] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(part.text or "" for part in self.content)


class _FunctionName(msgspec.Struct):
    name: str = ""


class InputTool(msgspec.Struct):
    function: _FunctionName | None = None


class StreamOptions(msgspec.Struct):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatRequest(msgspec.Struct):
    """The fields the fake interprets; the recorded body keeps everything else."""

    model: str = ""
    messages: list[InputMessage] = []
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = None
    tools: list[InputTool] | None = None
    response_format: dict[str, Any] | None = None
    # vLLM's extra parameters (OpenAI refuses them as unknown arguments).
    continue_final_message: bool | None = None
    add_generation_prompt: bool | None = None

    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return ""

    def user_spoke_last(self) -> bool:
        return bool(self.messages) and self.messages[-1].role == "user"

    def tool_names(self) -> tuple[str, ...]:
        return tuple(t.function.name for t in self.tools or () if t.function and t.function.name)


class EmbeddingsRequest(msgspec.Struct):
    input: str | list[Any]
    model: str = ""
    encoding_format: str | None = None
    dimensions: int | None = None


decode_chat_request = msgspec.json.Decoder(ChatRequest).decode
decode_embeddings_request = msgspec.json.Decoder(EmbeddingsRequest).decode
encode = msgspec.json.Encoder().encode

# --------------------------------------------------------------------------- responses


class ChatStyle(msgspec.Struct, frozen=True, kw_only=True):
    """How one OpenAI-format provider dresses its answers."""

    system_fingerprint: str
    service_tier: str | UnsetType = UNSET
    obfuscation: bool = False
    # Azure content filtering: annotations on each choice (a stream annotates its content
    # chunks, with fewer categories) and on the prompt.
    content_filter_results: dict[str, Any] | UnsetType = UNSET
    chunk_filter_results: dict[str, Any] | UnsetType = UNSET
    prompt_filter_results: list[Any] | UnsetType = UNSET


class _PromptDetails(msgspec.Struct):
    cached_tokens: int
    audio_tokens: int = 0


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int
    audio_tokens: int = 0
    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0


class _Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: _PromptDetails
    completion_tokens_details: _CompletionDetails


class _Function(msgspec.Struct):
    name: str
    arguments: str


class _ToolCall(msgspec.Struct):
    id: str
    type: str
    function: _Function


class _Message(msgspec.Struct, kw_only=True):
    role: str = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[_ToolCall] | UnsetType = UNSET
    annotations: list[Any] = []


class _Choice(msgspec.Struct, kw_only=True):
    content_filter_results: dict[str, Any] | UnsetType = UNSET
    index: int
    message: _Message
    logprobs: None = None
    finish_reason: str


class _Completion(msgspec.Struct, kw_only=True):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[_Choice]
    usage: _Usage
    service_tier: str | UnsetType = UNSET
    system_fingerprint: str
    prompt_filter_results: list[Any] | UnsetType = UNSET


class _FunctionDelta(msgspec.Struct, kw_only=True):
    name: str | UnsetType = UNSET
    arguments: str


class _ToolCallDelta(msgspec.Struct, kw_only=True):
    index: int
    id: str | UnsetType = UNSET
    type: str | UnsetType = UNSET
    function: _FunctionDelta


class _Delta(msgspec.Struct, kw_only=True):
    role: str | UnsetType = UNSET
    content: str | None | UnsetType = UNSET
    tool_calls: list[_ToolCallDelta] | UnsetType = UNSET
    refusal: None | UnsetType = UNSET


class _ChunkChoice(msgspec.Struct, kw_only=True):
    content_filter_results: dict[str, Any] | UnsetType = UNSET
    index: int
    delta: _Delta
    logprobs: None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct, kw_only=True):
    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    service_tier: str | UnsetType = UNSET
    system_fingerprint: str | UnsetType = UNSET
    choices: list[_ChunkChoice]
    # OpenAI sends `"usage": null` on every chunk, with or without include_usage.
    usage: _Usage | None | UnsetType = None
    obfuscation: str | UnsetType = UNSET
    prompt_filter_results: list[Any] | UnsetType = UNSET


class ChunkEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """What every chunk of one stream repeats."""

    id: str
    created: int
    model: str
    choices: int
    include_usage: bool
    include_obfuscation: bool


DONE_EVENT = sse_data(b"[DONE]")
# Padding against size side channels; real values are random, any string parses.
_OBFUSCATION = ("q3Kf", "Z1", "p0Rt8", "Y", "mN2", "c7Bx")
_EMPTY: dict[str, Any] = {}


def usage_of(plan: ReplyPlan) -> _Usage:
    return _Usage(
        prompt_tokens=plan.prompt_tokens,
        completion_tokens=plan.completion_tokens,
        total_tokens=plan.total_tokens,
        prompt_tokens_details=_PromptDetails(cached_tokens=plan.cached_tokens),
        completion_tokens_details=_CompletionDetails(reasoning_tokens=plan.reasoning_tokens),
    )


def _tool_call(call: ToolCallPlan, call_id: str) -> _ToolCall:
    return _ToolCall(
        id=call_id, type="function", function=_Function(name=call.name, arguments=call.arguments)
    )


def tool_call_ids(response_id: str, plan: ReplyPlan) -> list[str]:
    return [f"call_{response_id[-20:]}{i}" for i in range(len(plan.tool_calls))]


def render_completion(
    plan: ReplyPlan, style: ChatStyle, *, id: str, created: int, model: str, choices: int
) -> bytes:
    """A `chat.completion` body with `choices` identical choices."""
    ids = tool_call_ids(id, plan)
    calls = [_tool_call(c, i) for c, i in zip(plan.tool_calls, ids, strict=True)] or UNSET
    message = _Message(content=plan.text, tool_calls=calls)
    return encode(
        _Completion(
            id=id,
            created=created,
            model=model,
            choices=[
                _Choice(
                    content_filter_results=style.content_filter_results,
                    index=index,
                    message=message,
                    finish_reason=plan.finish_reason,
                )
                for index in range(choices)
            ],
            usage=usage_of(plan),
            service_tier=style.service_tier,
            system_fingerprint=style.system_fingerprint,
            prompt_filter_results=style.prompt_filter_results,
        )
    )


class StreamRenderer:
    """Renders one stream's events: the opening, the content steps and the closing."""

    def __init__(self, plan: ReplyPlan, style: ChatStyle, envelope: ChunkEnvelope) -> None:
        self.plan = plan
        self.style = style
        self.envelope = envelope
        self._count = 0

    def opening(self) -> list[bytes]:
        """Azure's prompt-filter chunk, then one role chunk per choice."""
        events = []
        if self.style.prompt_filter_results is not UNSET:
            events.append(self._prompt_filter_chunk())
        first = self._first_delta()
        events.extend(self._per_choice(first, filters=_EMPTY))
        return events

    def steps(self) -> Iterator[list[bytes]]:
        """Content pieces or tool-call deltas; each step is one event per choice."""
        filters = self.style.chunk_filter_results
        if not self.plan.tool_calls:
            for piece in self.plan.pieces:
                yield self._per_choice(_Delta(content=piece), filters=filters)
            return
        ids = tool_call_ids(self.envelope.id, self.plan)
        for index, call in enumerate(self.plan.tool_calls):
            if index:
                header = _call_header(index, call, ids)
                yield self._per_choice(_Delta(tool_calls=[header]), filters=_EMPTY)
            for fragment in call.fragments:
                tool_delta = _ToolCallDelta(
                    index=index, function=_FunctionDelta(arguments=fragment)
                )
                yield self._per_choice(_Delta(tool_calls=[tool_delta]), filters=_EMPTY)

    def closing(self) -> list[bytes]:
        """Finish chunks, the usage chunk when asked for, then `[DONE]`."""
        events = self._per_choice(_Delta(), filters=_EMPTY, finish_reason=self.plan.finish_reason)
        if self.envelope.include_usage:
            events.append(self._event([], usage=usage_of(self.plan)))
        events.append(DONE_EVENT)
        return events

    def _first_delta(self) -> _Delta:
        if not self.plan.tool_calls:
            return _Delta(role="assistant", content="", refusal=None)
        header = _call_header(
            0, self.plan.tool_calls[0], tool_call_ids(self.envelope.id, self.plan)
        )
        return _Delta(role="assistant", content=None, tool_calls=[header], refusal=None)

    def _per_choice(
        self,
        delta: _Delta,
        *,
        filters: dict[str, Any] | UnsetType = UNSET,
        finish_reason: str | None = None,
    ) -> list[bytes]:
        if self.style.chunk_filter_results is UNSET:
            filters = UNSET
        return [
            self._event(
                [
                    _ChunkChoice(
                        content_filter_results=filters,
                        index=index,
                        delta=delta,
                        finish_reason=finish_reason,
                    )
                ]
            )
            for index in range(self.envelope.choices)
        ]

    def _event(self, choices: list[_ChunkChoice], usage: _Usage | None = None) -> bytes:
        envelope = self.envelope
        self._count += 1
        obfuscation: str | UnsetType = UNSET
        if self.style.obfuscation and envelope.include_obfuscation:
            obfuscation = _OBFUSCATION[self._count % len(_OBFUSCATION)]
        chunk = _Chunk(
            id=envelope.id,
            created=envelope.created,
            model=envelope.model,
            service_tier=self.style.service_tier,
            system_fingerprint=self.style.system_fingerprint,
            choices=choices,
            usage=usage,
            obfuscation=obfuscation,
        )
        return sse_data(encode(chunk))

    def _prompt_filter_chunk(self) -> bytes:
        chunk = _Chunk(
            id="",
            object="",
            created=0,
            model="",
            choices=[],
            usage=UNSET,
            prompt_filter_results=self.style.prompt_filter_results,
        )
        return sse_data(encode(chunk))


def _call_header(index: int, call: ToolCallPlan, ids: list[str]) -> _ToolCallDelta:
    return _ToolCallDelta(
        index=index,
        id=ids[index],
        type="function",
        function=_FunctionDelta(name=call.name, arguments=""),
    )


def stream_error_event(message: str) -> bytes:
    """OpenAI's in-stream error: a data line whose JSON is only an `error` object."""
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    return sse_data(encode({"error": error}))
