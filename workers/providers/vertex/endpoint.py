"""Where Claude on Vertex AI lives and what its body looks like (issue #18).

    POST {base}/projects/{project}/locations/{location}/publishers/anthropic/models/
         {model}:rawPredict        a Messages body -> Anthropic's message JSON
         {model}:streamRawPredict  the same with `stream: true` -> Anthropic's SSE, as is
         count-tokens:rawPredict   a Messages body *with* `model` -> {"input_tokens": n}

The body is Anthropic's Messages body without `model` (the URL names it) and with
`anthropic_version: "vertex-2023-10-16"`; `stream` stays in it. `anthropic-beta` goes as the
header, as Anthropic's own `AnthropicVertex` client sends it. `base` is
`https://{location}-aiplatform.googleapis.com/v1` (`global`: `aiplatform.googleapis.com`;
the `us` and `eu` multi-regions: their `rep` hosts), or the deployment's `api_base`.

Project, location and model become parts of a URL the operator did not write out, so each
is checked against what Google allows for it: a location can never name another host, a
project or model never another path.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from workers.deployment import Deployment

PROVIDER = "vertex_ai"
ANTHROPIC_VERSION = "vertex-2023-10-16"
COUNT_TOKENS_MODEL = "count-tokens"
# Google's region names (`us-east5`, `europe-west1`), `global`, and the multi-regions.
_LOCATION = re.compile(r"[a-z][a-z0-9-]{0,62}")
# A project id (6-30 of [a-z0-9-]), possibly domain-scoped (`example.com:my-project`).
_PROJECT = re.compile(r"(?:[a-z0-9][a-z0-9.-]{0,62}:)?[a-z][a-z0-9-]{4,29}")
# Publisher model ids (`claude-sonnet-4-5@20250929`); `~=` for the fake's scenario directives,
# harmless: the id is percent-encoded into its one path segment anyway.
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@~=-]{0,255}")
_MULTI_REGION_HOSTS = {
    "global": "aiplatform.googleapis.com",
    "us": "aiplatform.us.rep.googleapis.com",
    "eu": "aiplatform.eu.rep.googleapis.com",
}


def is_claude(model: str) -> bool:
    return "claude" in model.lower()


def config_problem(deployment: Deployment) -> tuple[str, str] | None:
    """(the litellm_params field, what is wrong) for a deployment Vertex cannot be asked for."""
    model = deployment.model
    if not is_claude(model) and not is_claude(deployment.base_model or ""):
        return (
            "model",
            f"`vertex_ai/{model}`: Switchboard serves Claude on Vertex AI "
            "(vertex_ai/claude-...); reach Gemini through a gemini/ deployment",
        )
    if not _MODEL.fullmatch(model):
        return "model", "a Vertex AI model id is letters, digits and `._@-`"
    if deployment.api_key:
        # Never silently unused: a key here is a credential the operator thinks is in play.
        return (
            "api_key",
            "Vertex AI takes Google credentials, not an api_key: vertex_credentials (a "
            "service account's JSON key) or Application Default Credentials",
        )
    options = deployment.options
    project, location = options.get("vertex_project"), options.get("vertex_location")
    if not project:
        return "vertex_project", "Vertex AI needs the Google Cloud project id"
    if not _PROJECT.fullmatch(str(project)):
        return "vertex_project", "not a Google Cloud project id"
    if not location:
        return "vertex_location", "Vertex AI needs a location (`us-east5`, `global`, ...)"
    if not _LOCATION.fullmatch(str(location)):
        return "vertex_location", "not a Google Cloud location"
    return None


def api_root(deployment: Deployment) -> str:
    """The `.../v1` root every Vertex URL of this deployment starts with."""
    if deployment.api_base:
        base = deployment.api_base.rstrip("/")
        return base if base.endswith(("/v1", "/v1beta1")) else base + "/v1"
    location = str(deployment.options["vertex_location"])
    host = _MULTI_REGION_HOSTS.get(location, f"{location}-aiplatform.googleapis.com")
    return f"https://{host}/v1"


def model_url(deployment: Deployment, model: str) -> str:
    """`{root}/projects/P/locations/L/publishers/anthropic/models/{model}`, encoded."""
    options = deployment.options
    project = quote(str(options["vertex_project"]), safe=":")
    location = str(options["vertex_location"])
    return (
        f"{api_root(deployment)}/projects/{project}/locations/{location}"
        f"/publishers/anthropic/models/{quote(model, safe='@')}"
    )


def raw_predict_body(body: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A Messages body (the client's, or the translation's) as rawPredict takes it."""
    sent = {**defaults, **body}
    sent.pop("model", None)
    sent["anthropic_version"] = ANTHROPIC_VERSION
    return sent


def count_tokens_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """count-tokens:rawPredict's body: the Messages body with the model named in it."""
    return {**body, "model": model, "anthropic_version": ANTHROPIC_VERSION}
