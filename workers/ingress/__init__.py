"""The ingress APIs besides Chat Completions (issue #18): how a body in the client's API
becomes the chat wire model, and how the reply goes back out in that API.

The front door validates and enqueues the client's bytes with `Envelope.ingress`; the worker
translates them here, runs the chat call through the same routing, and formats each batch
of chunks (or the whole response) with the ingress's `Formatter`. One queue, one router,
one counting path: only the two edges differ.
"""

from __future__ import annotations

from typing import Any, Protocol

from workers.envelopes import INGRESS_MESSAGES
from workers.ingress import messages_reply, messages_request
from workers.wire import ChatCompletion, ChatCompletionChunk, Usage, encode


class Formatter(Protocol):
    """How one request's reply is written in its client's API."""

    def frame(self, batch: list[ChatCompletionChunk]) -> tuple[list[bytes], Usage | None]:
        """A batch's events, and the usage if the batch carried it (it comes last)."""
        ...

    def finish(self, usage: Usage | None) -> list[bytes]:
        """The events that end the stream (before the record's terminal event)."""
        ...

    def response(self, response: ChatCompletion) -> bytes:
        """A whole (non-stream) response body."""
        ...


class ChatFormatter:
    """Chat Completions: chunks as they are; the usage chunk only when asked for."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage

    def frame(self, batch: list[ChatCompletionChunk]) -> tuple[list[bytes], Usage | None]:
        chunks: list[bytes] = []
        usage = None
        for chunk in batch:
            if chunk.usage is not None and not chunk.choices:
                usage = chunk.usage
                if not self.include_usage:
                    continue
            chunks.append(encode(chunk))
        return chunks, usage

    def finish(self, usage: Usage | None) -> list[bytes]:
        return []

    def response(self, response: ChatCompletion) -> bytes:
        return encode(response)


class MessagesFormatter(messages_reply.MessagesStream):
    """Anthropic Messages, answered under the model name the client asked for."""

    def response(self, response: ChatCompletion) -> bytes:
        return messages_reply.message_body(response, self.model)


def chat_body(ingress: int, body: dict[str, Any], *, drop_params: bool) -> dict[str, Any]:
    """The chat body for a body in the ingress's API (gateway fields already removed)."""
    if ingress == INGRESS_MESSAGES:
        return messages_request.to_chat_body(body, drop_params=drop_params)
    return body
