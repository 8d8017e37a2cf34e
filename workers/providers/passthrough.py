"""Where a provider pass-through (`/openai/{path}`, `/anthropic/{path}`, `/gemini/{path}`,
`/azure/{path}`, `/bedrock/{path}`, `/vertex_ai/{path}`; issue #18) goes: the base URL and
credentials of a configured deployment of that provider. The client names only a path under
that base, and the path may not climb out of it, so a pass-through never reaches a host the
operator did not configure; the client's own credentials are never forwarded."""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec
from yarl import URL

from workers.deployment import Deployment
from workers.errors import InvalidRequest, NotFound
from workers.providers import provider_defaults
from workers.providers.bedrock.signing import Signer, make_signer, resolve_region
from workers.providers.vertex import endpoint as vertex_endpoint
from workers.providers.vertex.auth import signer_for

# The route names, as LiteLLM spells them, and the provider each reaches.
PROVIDERS: Mapping[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "azure": "azure",
    "bedrock": "bedrock",
    # LiteLLM's Vertex AI pass-through: served by a Gemini deployment where Vertex's path
    # maps onto the Gemini API (`vertex_path`); Switchboard has no Vertex credentials.
    "vertex_ai": "gemini",
}
# A Vertex publisher-model path: version, project, location, then `models/<model>:<method>`.
_VERTEX_MODEL = re.compile(
    r"(?P<version>v1|v1beta1)/projects/[^/]+/locations/[^/]+/publishers/google/"
    r"(?P<rest>models/[^/]+)"
)
# A Vertex path to Claude: `{version}/projects/P/locations/L/publishers/anthropic/models/M:method`.
_VERTEX_CLAUDE = re.compile(
    r"(?:v1|v1beta1)/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/"
    r"(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)"
)
# Vertex API version -> the Gemini API's.
_VERTEX_VERSIONS = {"v1": "v1", "v1beta1": "v1beta"}
# The characters a forwarded path may hold: RFC 3986 path characters, no backslash, no
# whitespace, no `?` or `#` (the query travels apart).
_PATH = re.compile(r"[A-Za-z0-9._~:@!$&'()*+,;=%/-]*")
MAX_PATH_CHARS = 2048
# Client headers forwarded: what describes the body and the provider's own API options.
FORWARDED_HEADERS = (
    "content-type",
    "accept",
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
)
# Query parameters that carry credentials: the gateway's, never the client's.
CREDENTIAL_QUERY = frozenset({"key", "api-key", "api_key"})


class Upstream(msgspec.Struct, frozen=True, kw_only=True):
    """A provider's base URL and what authenticates a request to it."""

    root: str
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    signer: Signer | None = None

    def url(self, path: str, query: Mapping[str, str]) -> str:
        """The upstream URL for a forwarded `path` (already checked) and query."""
        params = {k: v for k, v in query.items() if k.lower() not in CREDENTIAL_QUERY}
        params = {**self.query, **params}
        url = URL(self.root.rstrip("/") + "/" + path.lstrip("/"), encoded=True)
        return str(url.with_query(params) if params else url)


def checked_path(path: str) -> str:
    """`path` if it stays under the base: no `..` segment, no doubled slash, nothing that
    would make it another URL."""
    if len(path) > MAX_PATH_CHARS or not _PATH.fullmatch(path):
        raise _bad_path()
    decoded = URL("/" + path, encoded=True).path  # %2e%2e is `..` too
    segments = decoded.split("/")[1:]
    if any(s in (".", "..") for s in segments) or "//" in "/" + path or "\\" in decoded:
        raise _bad_path()
    return path


def vertex_path(path: str) -> str:
    """The Gemini API path for a Vertex AI one, where they map: a Google publisher model's
    methods (`v1/projects/P/locations/L/publishers/google/models/M:generateContent` ->
    `v1/models/M:generateContent`, `v1beta1` -> `v1beta`), whose bodies the two APIs share.
    Anything else (tuned models, endpoints, other publishers) has no Gemini counterpart."""
    match = _VERTEX_MODEL.fullmatch(path.lstrip("/"))
    if match is None:
        raise NotFound(
            "this Vertex AI path has no Gemini API counterpart: only "
            "`{v1|v1beta1}/projects/*/locations/*/publishers/google/models/<model>:<method>` "
            "is served (by a Gemini deployment)",
            code="vertex_path_not_mapped",
        )
    return f"{_VERTEX_VERSIONS[match['version']]}/{match['rest']}"


def vertex_claude_model(path: str) -> tuple[str, str] | None:
    """(model, method) of a Vertex path to Claude's rawPredict or streamRawPredict (the
    model `count-tokens` for the counter), else None. The project and location the client
    wrote are not used: a Claude call goes to the configured Vertex deployment's own."""
    match = _VERTEX_CLAUDE.fullmatch(path.lstrip("/"))
    return (match["model"], match["method"]) if match else None


def _bad_path() -> InvalidRequest:
    return InvalidRequest(
        "the pass-through path must be a plain path under the provider's API",
        param="path",
        code="invalid_path",
    )


def upstream_for(deployment: Deployment) -> Upstream:
    provider = deployment.provider
    base = (deployment.api_base or provider_defaults(provider).api_base or "").rstrip("/")
    key = str(deployment.api_key) if deployment.api_key else None
    headers = dict(deployment.extra_headers)
    if provider == "openai":
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if deployment.organization:
            headers["OpenAI-Organization"] = deployment.organization
        return Upstream(root=base.removesuffix("/v1"), headers=headers)
    if provider == "anthropic":
        if key:
            headers["x-api-key"] = key
        root = base.removesuffix("/messages").removesuffix("/v1")
        return Upstream(root=root, headers=headers)
    if provider == "gemini":
        if key:
            headers["x-goog-api-key"] = key
        return Upstream(root=base, headers=headers)
    if provider == "azure":
        if key:
            headers["api-key"] = key
        query = {"api-version": deployment.api_version} if deployment.api_version else {}
        return Upstream(root=base.removesuffix("/openai"), headers=headers, query=query)
    if provider == "bedrock":
        options = deployment.options
        endpoint = base or options.get("aws_bedrock_runtime_endpoint")
        region = "" if key and endpoint else resolve_region(options, endpoint)
        root = (endpoint or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        return Upstream(root=root, headers=headers, signer=make_signer(options, key, region))
    if provider == vertex_endpoint.PROVIDER:
        # Claude on Vertex: the deployment's `.../v1` root and a Google access token.
        root = vertex_endpoint.api_root(deployment)
        return Upstream(root=root, headers=headers, signer=signer_for(deployment.options))
    raise InvalidRequest(f"no pass-through for provider {provider}", code="unsupported_provider")
