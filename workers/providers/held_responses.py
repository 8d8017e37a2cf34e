"""Where an OpenAI or Azure deployment keeps the responses it made (issue #18): the URL of
one held response (`GET`, `DELETE`, `/input_items`, `/cancel`) and the credentials to
reach it, as the deployment's adapter names its Responses endpoint. The front door reads
held responses through these (broker/routes/responses_held.py), outside the queue."""

from __future__ import annotations

from urllib.parse import quote

from workers.deployment import Deployment
from workers.providers import provider_defaults


def held_response_url(deployment: Deployment, response_id: str, tail: str = "") -> str:
    """Where a deployment keeps one of its responses (`tail`: `/input_items`, `/cancel`),
    as its adapter's `responses_url` names the collection; the query travels apart."""
    base = (deployment.api_base or provider_defaults(deployment.provider).api_base or "").rstrip(
        "/"
    )
    path = f"/responses/{quote(response_id, safe='')}{tail}"
    if deployment.provider == "azure" and not base.endswith("/openai/v1"):
        return f"{base}/openai{path}"
    return base + path


def held_response_query(deployment: Deployment) -> dict[str, str]:
    """The query every call to that URL carries (Azure's api-version off its v1 surface)."""
    base = (deployment.api_base or "").rstrip("/")
    if deployment.provider == "azure" and not base.endswith("/openai/v1"):
        return {"api-version": deployment.api_version or ""}
    return {}


def held_response_headers(deployment: Deployment) -> dict[str, str]:
    """The deployment's credentials, as its adapter sends them."""
    headers = dict(deployment.extra_headers)
    key = str(deployment.api_key) if deployment.api_key else None
    if deployment.provider == "azure":
        token = deployment.options.get("azure_ad_token")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif key:
            headers["api-key"] = key
        return headers
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if deployment.organization:
        headers["OpenAI-Organization"] = deployment.organization
    return headers
