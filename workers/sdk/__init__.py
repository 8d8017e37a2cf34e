"""The in-process SDK: the service's adapters and router called directly, no Redis, no queue.

Its public import name is `switchboard` (the top-level package re-exports this one):

    import switchboard
    switchboard.completion(model="openai/gpt-4o", messages=[...])

- `calls`: `completion`, `acompletion`, `embedding`, `aembedding` (one deployment per call)
- `batch`: `batch_completion`, `abatch_completion`: many conversations, bounded concurrency
- `router`: `Router`, LiteLLM's router over a model_list (retries, fallbacks, strategies)
- `requests`: what both send: keyword arguments as a body, the body as a validated call
- `stream`: the stream objects callers iterate
- `sync`: the background event loop that runs the async engine for synchronous callers
- `assemble`: `stream_chunk_builder`, a whole response from stream chunks
- `exceptions`: the error classes under LiteLLM's names (`RateLimitError`, ...)
- `callbacks`: LiteLLM's `success_callback`, `failure_callback`, `callbacks` (issue #19)
"""

from workers.hooks.custom_logger import CustomLogger
from workers.http import close_shared_client as aclose
from workers.pricing import completion_cost, cost_per_token
from workers.sdk.assemble import stream_chunk_builder
from workers.sdk.batch import abatch_completion, batch_completion
from workers.sdk.callbacks import flush_callbacks
from workers.sdk.calls import acompletion, aembedding, completion, embedding
from workers.sdk.exceptions import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
    UnprocessableEntityError,
)
from workers.sdk.router import Router
from workers.sdk.stream import ChatStream, SyncChatStream

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Timeout",
    "UnprocessableEntityError",
    "ChatStream",
    "CustomLogger",
    "Router",
    "SyncChatStream",
    "abatch_completion",
    "acompletion",
    "aclose",
    "aembedding",
    "batch_completion",
    "completion",
    "completion_cost",
    "cost_per_token",
    "embedding",
    "flush_callbacks",
    "stream_chunk_builder",
]
