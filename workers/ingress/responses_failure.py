"""How a /v1/responses stream that fails after its first event ends: with the
`response.failed` event the Responses API sends (the response object so far, `status:
"failed"`, its `error`), not a bare cut and not a chat-shaped error event (issue #18).

A translated stream builds it from its own state (workers/ingress/__init__.py); a native
one from what the provider had sent: the response of its `response.created` event, the
items its `response.output_item.done` events closed, and the next sequence number.
"""

from __future__ import annotations

from typing import Any

import orjson

from workers.errors import SwitchboardError
from workers.ingress.responses_reply import event

JSONObject = dict[str, Any]
CREATED = b"event: response.created\n"
ITEM_DONE = b"event: response.output_item.done\n"
# The events that end a Responses stream: once one went out, nothing follows it.
TERMINAL = (
    b"event: response.completed\n",
    b"event: response.incomplete\n",
    b"event: response.failed\n",
    b"event: error\n",
)
DATA = b"\ndata: "


def failure_of(error: SwitchboardError) -> JSONObject:
    """A response's `error` (ResponseError: its code is one of OpenAI's few)."""
    code = "rate_limit_exceeded" if error.http_status == 429 else "server_error"
    return {"code": code, "message": error.message}


def _data(framed: bytes) -> Any:
    try:
        return orjson.loads(framed.partition(DATA)[2])
    except orjson.JSONDecodeError:
        return None


class NativeEvents:
    """What a relayed native stream said so far, to end it with `response.failed`. Only
    `response.created` and `response.output_item.done` are decoded; other events are
    counted (OpenAI numbers them from 0, one apart)."""

    __slots__ = ("response", "output", "count", "is_ended")

    def __init__(self) -> None:
        self.response: JSONObject | None = None
        self.output: list[JSONObject] = []
        self.count = 0
        self.is_ended = False

    def read(self, framed: list[bytes]) -> None:
        for one in framed:
            self.count += 1
            if one.startswith(CREATED):
                created = _data(one)
                if isinstance(created, dict) and isinstance(created.get("response"), dict):
                    self.response = created["response"]
            elif one.startswith(ITEM_DONE):
                done = _data(one)
                if isinstance(done, dict) and isinstance(done.get("item"), dict):
                    self.output.append(done["item"])
            elif one.startswith(TERMINAL):
                self.is_ended = True

    def failed(self, error: SwitchboardError) -> list[bytes]:
        """The closing event; none when the stream had already ended (or never began)."""
        if self.is_ended or self.response is None:
            return []
        response = {
            **self.response,
            "status": "failed",
            "error": failure_of(error),
            "output": self.output,
        }
        data = {"type": "response.failed", "sequence_number": self.count, "response": response}
        return [event("response.failed", data)]
