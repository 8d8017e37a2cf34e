"""What a provider's batch API says, in the words native_poll.py works with: whether the
provider's batch ended, and each line's result already in OpenAI's format (a response
body with its status, or an error for a line that never ran), with its usage for the
cost. native_openai.py and native_anthropic.py speak their provider's API and yield these.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import msgspec

from workers.wire import Usage

# OpenAI's statuses (Anthropic's `ended` maps to "ended").
ENDED = frozenset({"completed", "failed", "expired", "cancelled", "ended"})


class Look(msgspec.Struct, frozen=True):
    status: str  # the provider's own word
    is_ended: bool


class Result(msgspec.Struct, frozen=True, kw_only=True):
    custom_id: str
    # The response (OpenAI's format) with its HTTP status; None: the line never ran.
    status: int | None = None
    body: bytes = b""
    request_id: str = ""
    # Why the line never ran ("batch_expired", "batch_cancelled", ...), when it did not.
    error_code: str = ""
    error_message: str = ""
    usage: Usage | None = None


class ProviderBatches(Protocol):
    """One provider's batch API for one deployment (the only place its URLs come from)."""

    def line(self, custom_id: str, body: bytes) -> bytes:
        """A line's request in the provider's form; raises what the interactive call would
        refuse it with (a parameter the provider cannot take)."""
        ...

    # Whether the provider's batch carries our batch id (OpenAI's metadata): then find()
    # is exact. Else (Anthropic) find() goes by time and size, and submits to a deployment
    # are made one at a time, so that two of ours are never both candidates.
    marks_batches: bool

    async def find(self, batch_id: str, since_s: int, lines: int | None) -> list[str]:
        """The provider's batches that may be the one made for `batch_id` by a runner that
        died before it recorded the id (its create call went out at `since_s`, unix
        seconds, with `lines` requests), oldest first; none: it was not made."""
        ...

    async def submit(self, batch_id: str, lines: AsyncIterator[bytes]) -> str:
        """Send the lines (each a request in the provider's form) as one batch, streamed;
        the provider's batch id."""
        ...

    async def look(self, provider_id: str) -> Look: ...

    async def cancel(self, provider_id: str) -> None: ...

    def results(self, provider_id: str) -> AsyncIterator[Result]:
        """Every line's result, once the batch ended."""
        ...


class _WithUsage(msgspec.Struct):
    # msgspec.Raw takes no union with None: JSON null stays the raw bytes `null`.
    usage: msgspec.Raw = msgspec.Raw(b"null")


_decode_with_usage = msgspec.json.Decoder(_WithUsage).decode


def usage_of(body: bytes) -> Usage | None:
    """The `usage` of an OpenAI response body (chat or embeddings), if it has one."""
    try:
        found = msgspec.json.decode(_decode_with_usage(body).usage)
        if not isinstance(found, dict):
            return None
        found.setdefault("completion_tokens", 0)  # embeddings count only the prompt
        found.setdefault("total_tokens", found.get("prompt_tokens", 0))
        return msgspec.convert(found, Usage)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
