"""What the fake Anthropic receives and what it decides to answer, before any rendering.

`MessagesRequest` reads the fields the fake interprets (the recorded body keeps the rest) and
checks them as the service does; `shape_reply` turns the shared `ReplyPlan` into Anthropic's
terms: thinking first, a short preamble before tool calls unless a tool is forced, text cut at
a requested stop sequence, usage split into input / cache read / cache write.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec

from workers.testing.reply import ReplyPlan, ToolCallPlan, continued
from workers.testing.tokens import count_tokens, split_text

STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)
MIN_THINKING_BUDGET = 1024
# Thinking tokens reported when the request enables thinking and no `reasoning=` is given.
DEFAULT_THINKING_TOKENS = 16
THINKING_TEXT = "The user wants a short reply. I will answer briefly."
# Claude 4.6 and later refuse a prefill (Anthropic's migration guide to Claude 4.6).
_NO_PREFILL = re.compile(r"claude-(?:opus|sonnet|haiku)-(?:4-[6-9]|[5-9])(?:-|$|~)")
PREFILL_UNSUPPORTED = (
    "This model does not support assistant message prefill. The conversation must end with a "
    "user message."
)
PREFILL_WITH_THINKING = (
    "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `text`. "
    "When `thinking` is enabled, a final `assistant` message must start with a thinking block."
)
TOOL_PREAMBLE = "Let me look that up."
_THINKING_BUDGET_MESSAGE = (
    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
    "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
    "#max-tokens-and-context-window-size"
)

# --------------------------------------------------------------------------- request


class _Block(msgspec.Struct):
    type: str = "text"
    text: str | None = None
    content: str | list[_Block] | None = None  # a tool_result's own blocks


class InputMessage(msgspec.Struct):
    role: str = "user"
    content: str | list[_Block] = ""

    def texts(self) -> Iterator[str]:
        """Every text in the message, tool results included (what the prompt counts)."""
        yield from _texts(self.content)

    def text(self) -> str:
        """Its text blocks joined (an assistant prefill's text)."""
        return self.user_text()

    def user_text(self) -> str:
        """The text the user typed: text blocks only, no tool results."""
        if isinstance(self.content, str):
            return self.content
        return "".join(block.text or "" for block in self.content if block.type == "text")


def _texts(content: str | list[_Block] | None) -> Iterator[str]:
    if isinstance(content, str):
        yield content
        return
    for block in content or ():
        if block.text:
            yield block.text
        if block.content is not None:
            yield from _texts(block.content)


class _Tool(msgspec.Struct):
    name: str = ""


class _ToolChoice(msgspec.Struct):
    type: str = "auto"


class _Thinking(msgspec.Struct):
    type: str = "disabled"
    budget_tokens: int | None = None


class MessagesRequest(msgspec.Struct):
    model: str | None = None
    max_tokens: int | None = None
    messages: list[InputMessage] | None = None
    system: str | list[_Block] | None = None
    tools: list[_Tool] | None = None
    tool_choice: _ToolChoice | None = None
    thinking: _Thinking | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    stream: bool | None = None

    def problem(self) -> str | None:
        """The service's 400 message for a body it would refuse, if any."""
        if not self.model:
            return "model: Field required"
        if self.max_tokens is None:
            return "max_tokens: Field required"
        if not self.messages:
            return (
                "messages: Field required"
                if self.messages is None
                else "messages: at least one message is required"
            )
        if self.temperature is not None and not 0 <= self.temperature <= 1:
            return "temperature: Input should be less than or equal to 1"
        return self._thinking_problem(self.max_tokens)

    def _thinking_problem(self, max_tokens: int) -> str | None:
        if self.thinking is None or self.thinking.type != "enabled":
            return None
        budget = self.thinking.budget_tokens
        if budget is None:
            return "thinking.enabled.budget_tokens: Field required"
        if budget < MIN_THINKING_BUDGET:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        return _THINKING_BUDGET_MESSAGE if max_tokens <= budget else None

    @property
    def thinks(self) -> bool:
        return self.thinking is not None and self.thinking.type in ("enabled", "adaptive")

    @property
    def forces_tool(self) -> bool:
        return self.tool_choice is not None and self.tool_choice.type in ("any", "tool")

    def prompt_texts(self) -> Iterator[str]:
        yield from _texts(self.system)
        for message in self.messages or ():
            yield from message.texts()

    def last_user_text(self) -> str:
        for message in reversed(self.messages or ()):
            if message.role == "user" and (text := message.user_text()):
                return text
        return ""

    def tool_names(self) -> tuple[str, ...]:
        return tuple(tool.name for tool in self.tools or () if tool.name)

    @property
    def prefill(self) -> str | None:
        """The text of a final assistant message: the start of the answer, which the
        service continues (assistant prefill); None when the last message is the user's."""
        messages = self.messages or ()
        if messages and messages[-1].role == "assistant":
            return messages[-1].text()
        return None

    def prefill_problem(self) -> str | None:
        """The service's 400 for a prefill it refuses, if any."""
        prefill = self.prefill
        if prefill is None:
            return None
        if self.model and _NO_PREFILL.search(self.model):
            return PREFILL_UNSUPPORTED
        if self.thinks:
            return PREFILL_WITH_THINKING
        if prefill != prefill.rstrip():
            return "messages: final assistant content cannot end with trailing whitespace"
        return None


decode_request = msgspec.json.Decoder(MessagesRequest).decode

# --------------------------------------------------------------------------- reply


class PrefillMismatch(ValueError):
    """The prefill is not how this fake's answer starts."""


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """One answer in Anthropic's words; token counts as its usage reports them."""

    thinking: str | None
    text: str | None
    pieces: tuple[str, ...]
    tool_calls: tuple[ToolCallPlan, ...]
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    output_tokens: int
    thinking_tokens: int


def shape_reply(
    plan: ReplyPlan,
    request: MessagesRequest,
    *,
    chunks: int,
    stop_reason: str | None,
    writes_cache: bool,
) -> Reply:
    text = plan.text
    if plan.tool_calls:
        text = None if request.forces_tool else TOOL_PREAMBLE
    text, stop_sequence = _cut_at_stop_sequence(text, request.stop_sequences or ())
    # Generation stops at the sequence: tool calls planned after the text never happen.
    calls = () if stop_sequence is not None else plan.tool_calls
    pieces = split_text(text, chunks) if text else ()
    prefill = request.prefill
    if prefill is not None:
        rest = continued(text or "", chunks, prefill)
        if rest is None:
            raise PrefillMismatch(
                f"fake upstream: the assistant prefill {prefill!r} is not how this model's "
                f"answer starts ({text!r})"
            )
        text, pieces = rest
    thinking_tokens = plan.reasoning_tokens
    written = (
        plan.prompt_tokens - plan.cached_tokens if writes_cache and not plan.cached_tokens else 0
    )
    output = thinking_tokens + (count_tokens(text) if text else 0)
    output += sum(count_tokens(call.arguments) for call in calls)
    return Reply(
        thinking=THINKING_TEXT if thinking_tokens else None,
        text=text,
        pieces=pieces,
        tool_calls=calls,
        stop_reason=stop_reason or _stop_reason(plan, stop_sequence),
        stop_sequence=stop_sequence,
        input_tokens=plan.prompt_tokens - plan.cached_tokens - written,
        cache_creation_input_tokens=written,
        cache_read_input_tokens=plan.cached_tokens,
        output_tokens=output,
        thinking_tokens=thinking_tokens,
    )


def _cut_at_stop_sequence(
    text: str | None, sequences: list[str] | tuple[str, ...]
) -> tuple[str | None, str | None]:
    """The text up to the earliest stop sequence it contains, and that sequence."""
    if not text:
        return text, None
    found = [(text.find(seq), seq) for seq in sequences if seq and seq in text]
    if not found:
        return text, None
    position, sequence = min(found)
    return text[:position] or None, sequence


def _stop_reason(plan: ReplyPlan, stop_sequence: str | None) -> str:
    if stop_sequence is not None:
        return "stop_sequence"
    if plan.finish_reason == "length":
        return "max_tokens"
    return "tool_use" if plan.tool_calls else "end_turn"
