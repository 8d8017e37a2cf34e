"""Switchboard: one OpenAI-compatible interface to every major LLM provider.

The package is the service (front door, CLI) and the in-process SDK entry points:

    from broker import completion, acompletion, embedding, aembedding, completion_cost, Router
"""

from workers.assemble import stream_chunk_builder
from workers.http import close_shared_client as aclose
from workers.pricing import completion_cost
from workers.routing.sdk import Router
from workers.sdk import acompletion, aembedding, completion, embedding

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
