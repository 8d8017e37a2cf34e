"""The built-in callbacks that need no extra package: `jsonl` (a file) and `webhook` (a JSON
POST with retries). Each writes LiteLLM's standard logging payload, one object per call.
(`otel` and `langfuse` live in workers/hooks/otel.py: they need the `otel` extra.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson

from workers.hooks.custom_logger import CustomLogger
from workers.retry import backoff_s
from workers.settings.hooks import JsonlCallback, WebhookCallback

log = logging.getLogger("switchboard.callbacks")
# The longest pause between two attempts of one event.
MAX_PAUSE_S = 5.0


def _payload(kwargs: dict[str, Any]) -> dict[str, Any]:
    return dict(kwargs["standard_logging_object"])


class JsonlLogger(CustomLogger):
    """Appends one line per call; the file is opened once and flushed after each line."""

    def __init__(self, settings: JsonlCallback) -> None:
        self.path = Path(settings.path)
        self._file: IO[bytes] | None = None

    def _write(self, kwargs: dict[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        line = orjson.dumps(_payload(kwargs), default=str) + b"\n"
        self._file.write(line)
        self._file.flush()

    # Sync hooks: the delivery runs them in a worker thread (the service's consumer a whole
    # batch in one), so the file write never blocks a loop.
    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._write(kwargs)

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._write(kwargs)

    async def aclose(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class WebhookLogger(CustomLogger):
    """POSTs each call's payload; retries connection failures, 429 and 5xx with backoff.
    The URL is the operator's (config), never a client's, so it needs no fetch guard."""

    def __init__(self, settings: WebhookCallback) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    @property
    def delivery_timeout_s(self) -> float:
        """The dispatcher lets one event take this long: the retries are the point."""
        return self.settings.retry_for_s + self.settings.timeout_s

    async def _post(self, kwargs: dict[str, Any]) -> None:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        body = orjson.dumps(_payload(kwargs), default=str)
        headers = {"Content-Type": "application/json", **self.settings.headers}
        give_up_at = time.monotonic() + self.settings.retry_for_s
        attempt = 0
        while True:
            try:
                async with self._session.post(
                    self.settings.url, data=body, headers=headers
                ) as response:
                    if response.status < 300:
                        return
                    if response.status != 429 and response.status < 500:
                        raise WebhookRefused(f"the webhook answered {response.status}")
                    why = f"status {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                why = type(exc).__name__
            pause_s = min(backoff_s(attempt), MAX_PAUSE_S)
            if time.monotonic() + pause_s > give_up_at:
                raise WebhookRefused(
                    f"the webhook failed for {self.settings.retry_for_s:g}s ({why})"
                )
            log.info("webhook delivery failed (%s); retrying in %.1fs", why, pause_s)
            await asyncio.sleep(pause_s)
            attempt += 1

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await self._post(kwargs)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await self._post(kwargs)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class WebhookRefused(Exception):
    """The webhook refused an event for good (a 4xx other than 429, or every retry failed)."""
