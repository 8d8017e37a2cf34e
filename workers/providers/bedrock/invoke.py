"""Claude on Bedrock in Anthropic's own API (issue #18): a /v1/messages body sent through
InvokeModel (`POST /model/{modelId}/invoke`) and InvokeModelWithResponseStream
(`/invoke-with-response-stream`), the way Anthropic's `AnthropicBedrock` client sends it.

    body   the client's Messages body, minus `model` and `stream` (the URL says both),
           plus `anthropic_version: bedrock-2023-05-31` and the `anthropic-beta` header as
           the body list `anthropic_beta`
    reply  Anthropic's message JSON, as is
    stream AWS event-stream frames; each `chunk` event's payload is
           `{"bytes": base64(<one Anthropic SSE event's JSON>)}` (plus Bedrock's `p`
           padding), turned back here into `event: <type>\\ndata: <json>` unchanged

A deployment's model says which API a Claude model takes, as LiteLLM writes it:
`bedrock/converse/<id>` always Converse (so /v1/messages is translated), `bedrock/invoke/<id>`
or a bare Claude id (`anthropic.claude-...`, `us.anthropic.claude-...`) InvokeModel for
/v1/messages. Chat completions go through Converse either way (`adapter.py`).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote

import orjson

from workers.deployment import Deployment
from workers.errors import ProviderError, SwitchboardError
from workers.providers.anthropic.stream import StreamTranslator
from workers.providers.base import NativeRequest
from workers.providers.bedrock.errors import PROVIDER, bedrock_error, stream_exception
from workers.providers.bedrock.eventstream import EventStreamDecoder, Frame, FrameError
from workers.providers.sse_reader import SSEEvent
from workers.wire import ChatCompletionChunk

# The one value Bedrock takes for Claude's Messages API (its model parameters page).
ANTHROPIC_VERSION = "bedrock-2023-05-31"
BETA_HEADER = "anthropic-beta"
# LiteLLM's route prefixes in `bedrock/<route>/<model id>`.
ROUTES = ("converse", "invoke")
# Body fields the URL carries instead (the SDK pops them alike).
_URL_FIELDS = ("model", "stream")
# The same path encoding botocore applies to the modelId label (`:` -> %3A, `/` -> %2F);
# the SigV4 canonical URI is computed from this encoded path.
_PATH_SAFE = "-._~"


def split_route(model: str) -> tuple[str | None, str]:
    """(`converse` | `invoke` | None, the Bedrock model id) of a deployment's model."""
    route, sep, rest = model.partition("/")
    if sep and route in ROUTES:
        return route, rest
    return None, model


def model_path(model: str) -> str:
    """`model/<the encoded Bedrock model id>` for a deployment's model."""
    return f"model/{quote(split_route(model)[1], safe=_PATH_SAFE)}"


def is_claude(model: str) -> bool:
    return "anthropic." in model or "claude" in model.lower()


def takes_messages(deployment: Deployment) -> bool:
    """Whether /v1/messages reaches this deployment in Anthropic's own API: a Bedrock
    deployment of a Claude model not pinned to Converse."""
    if deployment.provider != PROVIDER:
        return False
    route, model_id = split_route(deployment.model)
    if route == "converse":
        return False
    return route == "invoke" or is_claude(model_id) or is_claude(deployment.base_model or "")


def invoke_body(native: NativeRequest, defaults: dict[str, Any]) -> dict[str, Any]:
    """The InvokeModel body for a client's Messages body (module docstring)."""
    body = {**defaults, **native.body}
    for name in _URL_FIELDS:
        body.pop(name, None)
    body["anthropic_version"] = ANTHROPIC_VERSION
    beta = native.headers.get(BETA_HEADER, "")
    betas = [name.strip() for name in beta.split(",") if name.strip()]
    if betas:
        body["anthropic_beta"] = betas
    return body


def count_tokens_body(native: NativeRequest) -> bytes:
    """The CountTokens request (`POST /model/{modelId}/count-tokens`) for a Messages body:
    the InvokeModel body it would send, base64 in `input.invokeModel.body`. Bedrock answers
    `{"inputTokens": n}`."""
    body = base64.b64encode(orjson.dumps(invoke_body(native, {}))).decode()
    return orjson.dumps({"input": {"invokeModel": {"body": body}}})


class ChunkReader:
    """InvokeModelWithResponseStream bytes -> (chat chunks, Anthropic SSE events), per read.

    The chunks (Anthropic's own stream translation) feed routing, usage and cost exactly as
    the native Anthropic path's do; the events go to the client unchanged. A failure frame
    ends the read: the events before it in the same read are still returned, and `failure`
    holds the error to raise once they are sent."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.decoder = EventStreamDecoder()
        self.translator = StreamTranslator(model)
        self.failure: SwitchboardError | None = None

    @property
    def done(self) -> bool:
        return self.translator.done

    def feed(self, data: bytes) -> tuple[list[ChatCompletionChunk], list[bytes]]:
        try:
            frames = self.decoder.feed(data)
        except FrameError as exc:
            raise self._error(f"Bedrock sent a corrupt event stream: {exc}") from exc
        events: list[SSEEvent] = []
        for frame in frames:
            try:
                event = self._event(frame)
            except SwitchboardError as exc:
                self.failure = exc
                break
            if event is not None:
                events.append(event)
        native = [b"event: %s\ndata: %s" % (e.event or b"message", e.data) for e in events]
        return self.translator.read(events), native

    def finish(self) -> list[ChatCompletionChunk]:
        """The body ended: nothing more after message_stop, a failure in a frame."""
        if self.done:
            return []
        if self.decoder.pending_bytes:
            raise self._error("Bedrock ended the stream in the middle of a frame")
        return self.translator.finish()

    def _event(self, frame: Frame) -> SSEEvent | None:
        headers = frame.headers
        kind = headers.get(":message-type")
        if kind == "exception":
            exception = str(headers.get(":exception-type"))
            raise stream_exception(exception, frame.payload, model=self.model)
        if kind == "error":
            code = str(headers.get(":error-code") or "")
            message = str(headers.get(":error-message") or "the stream failed")
            raise bedrock_error(500, code, message, model=self.model)
        if headers.get(":event-type") != "chunk":
            return None  # an event type newer than this adapter
        return self._decoded(frame.payload)

    def _decoded(self, payload: bytes) -> SSEEvent:
        """The Anthropic event a chunk carries: its JSON exactly as Bedrock encoded it."""
        try:
            part = orjson.loads(payload)
            data = base64.b64decode(part["bytes"], validate=True)
            event_type = orjson.loads(data)["type"]
        except (orjson.JSONDecodeError, binascii.Error, KeyError, TypeError) as exc:
            raise self._error(f"Bedrock sent an unreadable chunk: {exc!r}") from exc
        if not isinstance(event_type, str):
            raise self._error("Bedrock sent a chunk whose event has no type")
        return SSEEvent(data=data, event=event_type.encode())

    def _error(self, message: str) -> ProviderError:
        return ProviderError(message, provider=PROVIDER, model=self.model)
