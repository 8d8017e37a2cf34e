"""OpenAI tool-call ids for Gemini function calls, carrying the call's thoughtSignature.

Gemini gives function calls no id, so the adapter derives one from the responseId, the
candidate and the call's position: the same response yields the same ids whether it was
streamed or not. Thinking models attach a `thoughtSignature` to the (first) functionCall part
and reject, or degrade on, a next turn that does not send it back. Clients reliably echo tool
call ids (every tool message names one), so the signature rides in the id:

    call_<24 hex>__thought__<signature, URL-safe base64 without padding>

URL-safe base64 keeps the id within `[A-Za-z0-9_-]`, which other providers require of tool
ids (Anthropic), so a conversation can still fall back to them.
"""

from __future__ import annotations

import hashlib

SIGNATURE_MARK = "__thought__"
_TO_URLSAFE = str.maketrans("+/", "-_")
_FROM_URLSAFE = str.maketrans("-_", "+/")


def call_id(response_id: str, candidate_index: int, position: int) -> str:
    """A stable id for the `position`-th call of a candidate of one response."""
    digest = hashlib.blake2b(
        f"{response_id}/{candidate_index}/{position}".encode(), digest_size=12
    ).hexdigest()
    return f"call_{digest}"


def with_signature(tool_call_id: str, signature: str | None) -> str:
    if not signature:
        return tool_call_id
    return tool_call_id + SIGNATURE_MARK + signature.translate(_TO_URLSAFE).rstrip("=")


def signature_of(tool_call_id: str) -> str | None:
    """The thoughtSignature (standard base64, as Gemini sends it) carried by an id, if any."""
    _, mark, encoded = tool_call_id.partition(SIGNATURE_MARK)
    if not mark or not encoded:
        return None
    padded = encoded + "=" * (-len(encoded) % 4)
    return padded.translate(_FROM_URLSAFE)
