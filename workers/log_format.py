"""Structured log lines (`--log-format json`, or `litellm_settings.json_logs`; issue #19):
one JSON object a line, with the id of the request the line is about.

The request id rides a ContextVar set where a request's task starts (the front door's
handler, the worker's job), so any log call inside it, ours or a library's, carries it.
"""

from __future__ import annotations

import contextvars
import datetime
import logging

import orjson

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "switchboard_request_id", default=None
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def use_json(logger: logging.Logger | None = None) -> None:
    """Format every handler of `logger` (the root by default) as JSON lines."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())
