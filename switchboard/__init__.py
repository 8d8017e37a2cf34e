"""Switchboard's in-process SDK, under the name LiteLLM users expect to swap in:

    import switchboard
    response = switchboard.completion(model="anthropic/claude-sonnet-4-6", messages=[...])

Everything here lives in `workers.sdk`; this package only gives it its public name.
Importing it loads no server, no Redis client and no config loader.
"""

from workers.sdk import (
    ChatStream,
    Router,
    SyncChatStream,
    aclose,
    acompletion,
    aembedding,
    completion,
    completion_cost,
    embedding,
    stream_chunk_builder,
)

__all__ = [
    "ChatStream",
    "Router",
    "SyncChatStream",
    "acompletion",
    "aclose",
    "aembedding",
    "completion",
    "completion_cost",
    "embedding",
    "stream_chunk_builder",
]
