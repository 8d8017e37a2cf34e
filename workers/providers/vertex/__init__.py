"""Claude on Google Vertex AI (`vertex_ai/claude-...`, issue #18): Anthropic's Messages API
behind Vertex's `rawPredict` / `streamRawPredict` (endpoint.py), authenticated with a Google
OAuth2 access token (auth.py).

Everything past the URL, the body's version field and the credentials is Anthropic's own
API, so the adapter is Anthropic's with those three replaced: chat completions are translated
exactly as for `anthropic/`, replies and streams read by the same code, and a /v1/messages
body goes through natively — the client's bytes with `model` removed and
`anthropic_version` set, Anthropic's reply and SSE events relayed unchanged.

    litellm_params:
      model: vertex_ai/claude-sonnet-4-5@20250929
      vertex_project: my-project
      vertex_location: us-east5
      vertex_credentials: /path/to/service-account.json   # or the JSON; absent: ADC
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from workers.deployment import Deployment, ProviderDefaults
from workers.errors import InvalidRequest
from workers.http import HttpClient
from workers.providers.anthropic import AnthropicAdapter
from workers.providers.anthropic.request import build_body
from workers.providers.base import Adapter, ChatCall, NativeRequest
from workers.providers.vertex.auth import VertexSigner, signer_for
from workers.providers.vertex.endpoint import (
    PROVIDER,
    config_problem,
    model_url,
    raw_predict_body,
)


def takes_messages(deployment: Deployment) -> bool:
    """Whether /v1/messages reaches this deployment in Anthropic's own API: every Vertex
    deployment Switchboard serves is Claude."""
    return deployment.provider == PROVIDER and config_problem(deployment) is None


class VertexAdapter(AnthropicAdapter):
    provider: ClassVar[str] = PROVIDER
    # The credentials are Google's (vertex_credentials or ADC), never an api_key.
    defaults: ClassVar[ProviderDefaults] = ProviderDefaults(requires_api_key=False)

    def __init__(self, deployment: Deployment, http: HttpClient) -> None:
        Adapter.__init__(self, deployment, http)
        self.headers = {"content-type": "application/json", **deployment.extra_headers}
        self.has_credentials = True
        # A bad deployment fails its calls, not the worker that loads it (the config
        # loader reports the same problem at load: config_problem).
        self.problem = config_problem(deployment)
        if self.problem is None:
            base = model_url(deployment, deployment.model)
            self.urls = {False: f"{base}:rawPredict", True: f"{base}:streamRawPredict"}
            self.signer: VertexSigner = signer_for(deployment.options)

    @classmethod
    def config_problem(cls, deployment: Deployment) -> tuple[str, str] | None:
        return config_problem(deployment)

    def _native(self, call: ChatCall) -> NativeRequest | None:
        native = call.native
        return native if native is not None and native.provider == "anthropic" else None

    def _body(self, call: ChatCall, *, stream: bool) -> dict[str, Any]:
        self._check()
        native = self._native(call)
        if native is not None:
            return raw_predict_body(native.body, self.deployment.default_params)
        translated = build_body(call, self.deployment, self.refuser(call), stream=stream)
        return raw_predict_body(translated, {})

    def _endpoint(self, *, stream: bool) -> str:
        return self.urls[stream]

    async def _request_headers(self, call: ChatCall) -> Mapping[str, str]:
        self._check()
        return await self.signer.headers(self.urls[False], b"", dict(self._headers(call)))

    def _check(self) -> None:
        if self.problem is not None:
            field, detail = self.problem
            raise InvalidRequest(
                f"this Vertex AI deployment cannot be called: {field}: {detail}",
                param=field,
                provider=PROVIDER,
                model=self.model,
            )


__all__ = ["VertexAdapter", "takes_messages"]
