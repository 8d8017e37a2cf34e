"""The provider registry: the only place that maps provider names to adapter classes.

Adapters are imported on first use, so a provider's optional dependencies (botocore for
Bedrock) load only when a deployment of that provider exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from workers.deployment import Deployment, ProviderDefaults, resolve_deployment
from workers.errors import ModelNotFound
from workers.http import HttpClient
from workers.providers.base import Adapter

# name -> (module, class). OpenAI-compatible hosts share one module and one table.
_NATIVE: dict[str, tuple[str, str]] = {
    "openai": ("workers.providers.openai", "OpenAIAdapter"),
    "azure": ("workers.providers.azure", "AzureAdapter"),
    "anthropic": ("workers.providers.anthropic", "AnthropicAdapter"),
    "gemini": ("workers.providers.gemini", "GeminiAdapter"),
    "bedrock": ("workers.providers.bedrock", "BedrockAdapter"),
    "ollama": ("workers.providers.ollama", "OllamaAdapter"),
    # Claude on Vertex AI only (workers/providers/vertex/).
    "vertex_ai": ("workers.providers.vertex", "VertexAdapter"),
    "text-completion-openai": (
        "workers.providers.text_completion_openai",
        "TextCompletionOpenAIAdapter",
    ),
}
_COMPATIBLE = (
    "mistral",
    "groq",
    "deepseek",
    "xai",
    "together_ai",
    "fireworks_ai",
    "openrouter",
    "perplexity",
    "hosted_vllm",
    "ollama_chat",
    "lm_studio",
    "huggingface",
)
PROVIDERS: tuple[str, ...] = (*_NATIVE, *_COMPATIBLE)
# LiteLLM provider prefixes no adapter here serves: a config naming one is told so plainly,
# rather than that its model string cannot be read (issue #16).
UNSUPPORTED_LITELLM_PROVIDERS = frozenset(
    """
    sagemaker sagemaker_chat vertex_ai_beta cohere cohere_chat replicate databricks
    watsonx watsonx_text cloudflare ai21 ai21_chat nlp_cloud aleph_alpha petals palm vllm
    triton predibase clarifai voyage jina_ai anyscale baseten friendliai sambanova cerebras
    nvidia_nim github azure_ai azure_text codestral text-completion-codestral dashscope
    volcengine infinity elevenlabs assemblyai deepgram bedrock_converse nscale featherless_ai
    novita nebius galadriel topaz litellm_proxy llamafile oobabooga maritalk empower
    custom custom_openai cometapi heroku oci snowflake datarobot lambda_ai hyperbolic
    """.split()
)

# How a bare model name (no `provider/` prefix) is attributed, as LiteLLM does.
_BARE_NAME_PREFIXES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        (
            *("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "davinci", "babbage"),
            # OpenAI's image, audio and moderation models, as LiteLLM attributes them.
            *("dall-e-", "tts-", "whisper-", "omni-moderation", "text-moderation"),
        ),
        "openai",
    ),
    (("claude-",), "anthropic"),
    (("gemini-", "text-embedding-004", "gemini-embedding"), "gemini"),
    (("mistral-", "codestral-", "magistral-", "open-mistral", "pixtral-"), "mistral"),
    (("grok-",), "xai"),
    (("deepseek-",), "deepseek"),
)
# The providers that make the models a bare name is attributed to, then every other one
# (they host others' models): the order a bare name's price is looked for (workers.pricing),
# so that `gpt-4o` is OpenAI's price rather than a host's.
MODEL_MAKERS: tuple[str, ...] = tuple(dict.fromkeys(owner for _, owner in _BARE_NAME_PREFIXES))
HOSTS: tuple[str, ...] = (
    *(name for name in _COMPATIBLE if name not in MODEL_MAKERS),
    *(name for name in _NATIVE if name not in MODEL_MAKERS),
)


def adapter_class(provider: str) -> type[Adapter]:
    if provider in _NATIVE:
        module_name, class_name = _NATIVE[provider]
        cls: type[Adapter] = getattr(importlib.import_module(module_name), class_name)
        return cls
    if provider in _COMPATIBLE:
        from workers.providers.openai_compatible import adapter_class as compatible_class

        return compatible_class(provider)
    raise ModelNotFound(
        f"unknown provider `{provider}`; known providers: {', '.join(PROVIDERS)}",
        param="model",
    )


def split_model(model: str) -> tuple[str, str]:
    """`provider/model` -> (provider, model); a bare well-known name gets its provider."""
    provider, sep, rest = model.partition("/")
    if sep and provider in PROVIDERS:
        if not rest:
            raise ModelNotFound(
                f"model `{model}` names a provider but no model: write `{provider}/<model>`",
                param="model",
            )
        return provider, rest
    if sep and provider in UNSUPPORTED_LITELLM_PROVIDERS:
        raise ModelNotFound(
            f"provider `{provider}` is not supported by Switchboard "
            f"(supported: {', '.join(PROVIDERS)})",
            param="model",
        )
    for prefixes, owner in _BARE_NAME_PREFIXES:
        if model.startswith(prefixes):
            return owner, model
    raise ModelNotFound(
        f"cannot tell which provider serves `{model}`: write it as `provider/model` "
        f"(providers: {', '.join(PROVIDERS)})",
        param="model",
    )


def provider_defaults(provider: str) -> ProviderDefaults:
    return adapter_class(provider).defaults


def make_deployment(model: str, environ: Mapping[str, str], **given: object) -> Deployment:
    """A deployment for a `provider/model` string, credentials from `given` or `environ`."""
    provider, provider_model = split_model(model)
    return resolve_deployment(
        provider, provider_model, provider_defaults(provider), environ, **given
    )


def create_adapter(deployment: Deployment, http: HttpClient) -> Adapter:
    return adapter_class(deployment.provider)(deployment, http)


__all__ = [
    "PROVIDERS",
    "Adapter",
    "adapter_class",
    "create_adapter",
    "make_deployment",
    "provider_defaults",
    "split_model",
]
