"""`CustomLogger`: the base class of callback objects, with LiteLLM's hook names and
signatures, so a LiteLLM logger (`class MyLogger(CustomLogger)`) runs unchanged.

Every hook defaults to doing nothing; a subclass overrides the ones it wants. The sync hooks
run in a thread (a slow one never stalls the event loop that serves requests), the async
ones on the delivery task's loop.
"""

from __future__ import annotations

from typing import Any


class CustomLogger:
    def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        pass

    def log_post_api_call(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        pass

    def log_stream_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        pass

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        pass

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        pass

    async def async_log_pre_api_call(
        self, model: str, messages: Any, kwargs: dict[str, Any]
    ) -> None:
        pass

    async def async_log_stream_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        pass

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        pass

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        pass


def overrides(logger: CustomLogger, hook: str) -> bool:
    """Whether `logger`'s class defines `hook` itself (skip the no-op defaults: each call
    of a sync one costs a thread hop)."""
    method = getattr(type(logger), hook, None)
    return method is not None and method is not getattr(CustomLogger, hook)
