"""`callback_settings` (LiteLLM's top-level section): where the built-in callbacks deliver,
and how the delivery queue is bounded (issue #19).

The callbacks themselves are named in `litellm_settings` (`success_callback`,
`failure_callback`, `callbacks`), as LiteLLM spells them; this section configures the
built-ins those lists may name, and `switchboard check` accounts for every key here.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta

from workers.deployment import Secret
from workers.settings.section import Section, names

Positive = Meta(gt=0)
NonNegativeInt = Annotated[int, Meta(ge=0)]

# The callback names built in (the rest of a list is import paths).
BUILTIN_CALLBACKS = frozenset({"jsonl", "webhook", "otel", "langfuse"})


class JsonlCallback(Section, frozen=True):
    """`jsonl`: one JSON line per finished call, appended to a file."""

    path: str


class WebhookCallback(Section, frozen=True):
    """`webhook`: each finished call POSTed as JSON (LiteLLM's generic API logger)."""

    url: Secret  # may carry a token in its query
    headers: dict[str, Secret] = {}
    # Attempts after the first when the endpoint fails or answers 5xx/429, with backoff.
    max_retries: NonNegativeInt = 3
    timeout_s: Annotated[float, Positive] = 10.0


class OtelCallback(Section, frozen=True):
    """`otel`: spans over OTLP/HTTP (needs the `otel` extra)."""

    # The collector's traces URL, e.g. http://collector:4318/v1/traces.
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    headers: dict[str, Secret] = {}
    service_name: str = "switchboard"


class LangfuseCallback(Section, frozen=True):
    """`langfuse`: Langfuse's OTLP endpoint with its basic auth (needs the `otel` extra)."""

    public_key: Secret
    secret_key: Secret
    host: str = "https://cloud.langfuse.com"


class CallbackSettings(Section, frozen=True):
    jsonl: JsonlCallback | None = None
    webhook: WebhookCallback | None = None
    otel: OtelCallback | None = None
    langfuse: LangfuseCallback | None = None
    # Events waiting for delivery per process; past it the oldest are dropped and counted
    # (switchboard_callback_events_dropped_total).
    max_queue: Annotated[int, Positive] = 10_000
    # Seconds one callback may take for one event before it is abandoned (and counted).
    callback_timeout_s: Annotated[float, Positive] = 30.0

    # LiteLLM's per-integration switches for integrations Switchboard does not ship.
    litellm_ignored: ClassVar[frozenset[str]] = names(
        "datadog langsmith lunary helicone s3 gcs_bucket arize braintrust"
    )
