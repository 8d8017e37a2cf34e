"""Switchboard's front door: the aiohttp service, its config loader and the command line.

The in-process SDK is `switchboard` (`workers.sdk`); its names stay importable from here
for code written against earlier releases:

    from broker import completion, acompletion, embedding, aembedding, completion_cost, Router
"""

from workers.sdk import (
    Router,
    aclose,
    acompletion,
    aembedding,
    completion,
    completion_cost,
    embedding,
    stream_chunk_builder,
)

__all__ = [
    "Router",
    "acompletion",
    "aclose",
    "aembedding",
    "completion",
    "completion_cost",
    "embedding",
    "stream_chunk_builder",
]
