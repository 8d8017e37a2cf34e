"""Azure OpenAI: OpenAI's bodies under a deployment URL with a required `api-version` and an
`api-key` header. The deployment name in the URL, not the body's `model`, picks the model.
Azure's content-filter refusals (400 `content_filter`) become content-policy errors."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from workers.deployment import ProviderDefaults
from workers.errors import InvalidRequest
from workers.providers.openai import OpenAIAdapter

# A GA version that supports stream_options, max_completion_tokens and json_schema.
DEFAULT_API_VERSION = "2024-10-21"


class AzureAdapter(OpenAIAdapter):
    provider: ClassVar[str] = "azure"
    defaults: ClassVar[ProviderDefaults] = ProviderDefaults(
        api_base_env=("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"),
        api_key_env=("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
        api_version=DEFAULT_API_VERSION,
        api_version_env=("AZURE_API_VERSION", "OPENAI_API_VERSION"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.deployment.api_version:
            raise InvalidRequest(
                "azure deployments need an api_version",
                param="api_version",
                provider=self.provider,
                model=self.model,
            )
        # `/openai/v1` resources take the deployment in the body instead of the path.
        self.is_v1_surface = self.base_url.endswith("/openai/v1")
        deployment_path = quote(self.model, safe="")
        self._query = f"?api-version={quote(self.deployment.api_version, safe='')}"
        self._prefix = (
            self.base_url
            if self.is_v1_surface
            else f"{self.base_url}/openai/deployments/{deployment_path}"
        )

    def auth_headers(self) -> dict[str, str]:
        token = self.deployment.options.get("azure_ad_token")
        if token:
            return {"Authorization": f"Bearer {token}"}
        return {"api-key": str(self.deployment.api_key)} if self.deployment.api_key else {}

    def chat_url(self) -> str:
        if self.is_v1_surface:
            return f"{self._prefix}/chat/completions"
        return f"{self._prefix}/chat/completions{self._query}"

    def responses_url(self) -> str:
        # Azure serves Responses at the resource, not under a deployment: the body's model
        # names the deployment (which `self.model` is).
        if self.is_v1_surface:
            return f"{self._prefix}/responses"
        return f"{self.base_url}/openai/responses{self._query}"

    def embeddings_url(self) -> str:
        if self.is_v1_surface:
            return f"{self._prefix}/embeddings"
        return f"{self._prefix}/embeddings{self._query}"
