"""Callbacks and guardrails a test config names by import path, as LiteLLM's proxy config names
`custom_callbacks.proxy_handler_instance`."""

from __future__ import annotations

import asyncio
from typing import Any

from workers.hooks.custom_logger import CustomLogger
from workers.hooks.guardrails import CustomGuardrail


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


class Judge(CustomGuardrail):
    """A during_call guardrail that takes a moment, like a model as judge would."""

    def __init__(self, *, delay_s: float = 0.05, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay_s = delay_s

    async def async_moderation_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, call_type: str
    ) -> None:
        await asyncio.sleep(self.delay_s)
        if "forbidden" in str(data.get("messages")):
            raise ValueError("the judge said no")


class Flaky(CustomLogger):
    """Fails its first `fail_times` calls (a collector that is down for a while)."""

    def __init__(self) -> None:
        self.fail_times = 0
        self.calls = 0
        self.seen: list[str] = []

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise ConnectionError("the collector is down")
        self.seen.append(kwargs["litellm_call_id"])


flaky_instance = Flaky()
# Per-team callbacks (default_team_settings) record here.
team_a_instance = Recorder()
