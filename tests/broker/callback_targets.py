"""Callbacks a test config names by import path, as LiteLLM's proxy config names
`custom_callbacks.proxy_handler_instance`."""

from __future__ import annotations

from typing import Any

from workers.hooks.custom_logger import CustomLogger


class Recorder(CustomLogger):
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], Any]] = []

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.events.append(("success", kwargs, response_obj))

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.events.append(("failure", kwargs, response_obj))


proxy_handler_instance = Recorder()
seen_by_function: list[dict[str, Any]] = []


def log_success(kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
    seen_by_function.append(kwargs)
