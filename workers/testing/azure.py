"""Azure OpenAI as a fake: OpenAI bodies behind deployment URLs, `api-version` and `api-key`;
and the Responses API at the resource (`/openai/responses?api-version=...`, or
`/openai/v1/responses` on the v1 surface), with its stored responses.

The deployment name in the path is the model name the scenario is read from. What Azure adds
or words differently (azure.md): a leading prompt-filter chunk, `content_filter_results` on
choices, `prompt_filter_results`, the underlying model version as `model`, error bodies with
string codes, and `retry-after-ms` beside `retry-after`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from workers.testing import openai_errors
from workers.testing import openai_responses_store as responses_store
from workers.testing.openai import answer_chat, answer_embeddings, answer_responses
from workers.testing.openai_wire import ChatStyle
from workers.testing.responses import format_seconds, json_response
from workers.testing.scenario import Scenario
from workers.testing.state import FakeState, record_request

# GA versions are dates; previews add a suffix (2025-04-01-preview).
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
_SAFE = {"filtered": False, "severity": "safe"}
_UNDETECTED = {"filtered": False, "detected": False}
_CATEGORIES = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
_PROMPT_FILTERS = [
    {"prompt_index": 0, "content_filter_results": _CATEGORIES | {"jailbreak": _UNDETECTED}}
]
_CHOICE_FILTERS = _CATEGORIES | {
    "protected_material_code": _UNDETECTED,
    "protected_material_text": _UNDETECTED,
}
# Underlying model versions Azure reports; a deployment of another name reports the default.
_MODEL_VERSIONS = {"gpt-4o": "gpt-4o-2024-11-20", "gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
_DEFAULT_MODEL_VERSION = "gpt-4o-2024-11-20"
_DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"

_CONTENT_FILTER_BODY = {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
    "management policy. Please modify your prompt and retry. To learn more about our content "
    "filtering policies please read our documentation: "
    "https://go.microsoft.com/fwlink/?linkid=2198766",
    "type": None,
    "param": "prompt",
    "code": "content_filter",
    "status": 400,
    "innererror": {
        "code": "ResponsibleAIPolicyViolation",
        "content_filter_result": _CATEGORIES | {"jailbreak": {"filtered": True, "detected": True}},
    },
}
# status -> (code, message); `{version}` and `{retry_s}` are filled per request.
_ERRORS: dict[int, tuple[str, str]] = {
    401: (
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource.",
    ),
    403: ("PermissionDenied", "Principal does not have access to API/Operation."),
    404: (
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again.",
    ),
    429: (
        "429",
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        "{version} have exceeded token rate limit of your current OpenAI S0 pricing tier. "
        "Please retry after {retry_s} seconds. Please go here: https://aka.ms/oai/quotaincrease "
        "if you would like to further increase the default rate limit.",
    ),
    500: (
        "InternalServerError",
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: (
        "ServiceUnavailable",
        "The service is temporarily unable to process your request. Please try again later.",
    ),
}
_MISSING_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key "
    "when making requests to an API."
)


class AzureFlavor:
    style = ChatStyle(
        system_fingerprint="fp_ee1d74bde0",
        content_filter_results=_CHOICE_FILTERS,
        chunk_filter_results=_CATEGORIES,
        prompt_filter_results=_PROMPT_FILTERS,
    )

    def chat_model(self, scenario: Scenario) -> str:
        return _MODEL_VERSIONS.get(scenario.base, _DEFAULT_MODEL_VERSION)

    def embedding_model(self, scenario: Scenario) -> str:
        return scenario.base if scenario.base.startswith("text-") else _DEFAULT_EMBEDDING_MODEL

    def failure(self, request: web.Request, state: FakeState, scenario: Scenario) -> web.Response:
        headers = self.headers(state)
        if scenario.retry_after_s is not None:
            headers["retry-after"] = format_seconds(scenario.retry_after_s)
            headers["retry-after-ms"] = str(round(scenario.retry_after_s * 1000))
        if scenario.status == 429:
            headers["x-ratelimit-remaining-requests"] = "0"
            headers["x-ratelimit-remaining-tokens"] = "0"
        return _failure_body(request, scenario, headers)

    def headers(self, state: FakeState) -> dict[str, str]:
        request_id = f"{next(state.ids):032x}"
        return {"apim-request-id": request_id, "x-request-id": request_id, "x-ms-region": "East US"}


AZURE = AzureFlavor()


def _failure_body(
    request: web.Request, scenario: Scenario, headers: dict[str, str]
) -> web.Response:
    status = scenario.status or 500
    if scenario.error_kind == "content_filter":
        return _azure_error(400, _CONTENT_FILTER_BODY, headers)
    if scenario.error_kind is not None or status not in _ERRORS:
        # Azure passes the model's request-validation errors through in OpenAI's shape.
        return openai_errors.openai_failure(scenario, headers)
    code, message = _ERRORS[status]
    text = message.format(
        version=request.query.get("api-version", ""),
        retry_s=format_seconds(scenario.retry_after_s or 6),
    )
    return _azure_error(status, {"code": code, "message": text}, headers)


def _azure_error(
    status: int, error: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return json_response(msgspec.json.encode({"error": error}), status, headers)


def _denied(request: web.Request, state: FakeState) -> web.Response | None:
    """401 without a key (api-key, or an Entra ID bearer token); 404/400 on a bad version."""
    refused = _denied_v1(request, state)
    if refused is not None:
        return refused
    version = request.query.get("api-version")
    if version is None:
        return _azure_error(404, {"code": "404", "message": "Resource not found"})
    if not _API_VERSION.fullmatch(version):
        return _azure_error(400, {"code": "BadRequest", "message": "API version not supported"})
    return None


def _denied_v1(request: web.Request, state: FakeState) -> web.Response | None:
    """The v1 surface (`/openai/v1/...`) needs a key and no api-version."""
    key = request.headers.get("api-key")
    if key is None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        key = token if scheme.lower() == "bearer" else None
    if not key:
        return _azure_error(401, {"code": "401", "message": _MISSING_KEY})
    if not state.accepts_key(key):
        code, message = _ERRORS[401]
        return _azure_error(401, {"code": code, "message": message})
    return None


def routes(state: FakeState) -> list[web.RouteDef]:
    async def chat_completions(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        deployment = request.match_info["deployment"]
        return _denied(request, state) or await answer_chat(
            request, state, AZURE, body, model=deployment
        )

    async def embeddings(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        deployment = request.match_info["deployment"]
        return _denied(request, state) or await answer_embeddings(
            request, state, AZURE, body, model=deployment
        )

    async def responses(request: web.Request) -> web.StreamResponse:
        # The Responses API is the resource's, not a deployment's: the body's model names
        # the deployment (from api-version 2025-03-01-preview, or on the v1 surface).
        body = await record_request(request, state)
        return _denied(request, state) or await answer_responses(request, state, body)

    async def responses_v1(request: web.Request) -> web.StreamResponse:
        body = await record_request(request, state)
        return _denied_v1(request, state) or await answer_responses(request, state, body)

    return [
        web.post("/openai/deployments/{deployment}/chat/completions", chat_completions),
        web.post("/openai/deployments/{deployment}/embeddings", embeddings),
        web.post("/openai/responses", responses),
        web.post("/openai/v1/responses", responses_v1),
        *responses_store.routes("/openai", state, _denied),
        *responses_store.routes("/openai/v1", state, _denied_v1),
    ]
