"""OpenAI-compatible hosts: same wire format as OpenAI, different base URL, key variable and
a few parameters each host cannot honor.

They differ only in data, so they share one module: one table row per host. Anything a row
does not refuse is forwarded as sent, and the host's own 400 comes back as an InvalidRequest.

A host that continues a final assistant message (vLLM's `continue_final_message`, with
`add_generation_prompt: false`; SGLang's server takes the same two fields) lets a stream
whose worker died go on where it stopped (issue #15). Hosts whose prefix feature is not
that (Mistral's and DeepSeek's `prefix: true`) are not used for it: docs/providers/README.md.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from workers.deployment import ProviderDefaults
from workers.providers.base import NO_CONTINUATION, ChatCall, Continued, with_prefix
from workers.providers.openai import OpenAIAdapter

_THINKING = "use `reasoning_effort` for reasoning models"


class Host(msgspec.Struct, frozen=True, kw_only=True):
    defaults: ProviderDefaults
    refused: dict[str, str] = {}
    renamed: dict[str, str] = {}
    # Whether the host accepts `stream_options.include_usage`. Hosts that reject it usually
    # report usage on their last chunk anyway.
    stream_usage: bool = True
    # Most hosts predate `max_completion_tokens` and only know `max_tokens`.
    legacy_max_tokens: bool = True
    embeddings: bool = False
    # Whether the host continues a final assistant message (`continue_final_message`).
    continues_final_message: bool = False


HOSTS: dict[str, Host] = {
    "mistral": Host(
        defaults=ProviderDefaults(
            api_base="https://api.mistral.ai/v1",
            api_base_env=("MISTRAL_API_BASE",),
            api_key_env=("MISTRAL_API_KEY",),
        ),
        renamed={"seed": "random_seed"},
        refused={
            "logit_bias": "Mistral has no logit bias",
            "logprobs": "Mistral does not return log probabilities",
            "top_logprobs": "Mistral does not return log probabilities",
            "thinking": _THINKING,
        },
        stream_usage=False,
        embeddings=True,
    ),
    "groq": Host(
        defaults=ProviderDefaults(
            api_base="https://api.groq.com/openai/v1",
            api_base_env=("GROQ_API_BASE",),
            api_key_env=("GROQ_API_KEY",),
        ),
        refused={
            "logit_bias": "Groq does not support logit_bias",
            "logprobs": "Groq does not support logprobs",
            "top_logprobs": "Groq does not support logprobs",
            "thinking": _THINKING,
        },
    ),
    "deepseek": Host(
        defaults=ProviderDefaults(
            api_base="https://api.deepseek.com/v1",
            api_base_env=("DEEPSEEK_API_BASE",),
            api_key_env=("DEEPSEEK_API_KEY",),
        ),
        refused={"logit_bias": "DeepSeek has no logit bias", "thinking": _THINKING},
    ),
    "xai": Host(
        defaults=ProviderDefaults(
            api_base="https://api.x.ai/v1",
            api_base_env=("XAI_API_BASE",),
            api_key_env=("XAI_API_KEY",),
        ),
        refused={"thinking": _THINKING},
        legacy_max_tokens=False,
    ),
    "together_ai": Host(
        defaults=ProviderDefaults(
            api_base="https://api.together.xyz/v1",
            api_base_env=("TOGETHER_AI_API_BASE", "TOGETHERAI_API_BASE"),
            api_key_env=("TOGETHERAI_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHER_API_KEY"),
        ),
        refused={"thinking": _THINKING},
        embeddings=True,
    ),
    "fireworks_ai": Host(
        defaults=ProviderDefaults(
            api_base="https://api.fireworks.ai/inference/v1",
            api_base_env=("FIREWORKS_AI_API_BASE", "FIREWORKS_API_BASE"),
            api_key_env=("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"),
        ),
        refused={"thinking": _THINKING},
        embeddings=True,
    ),
    "openrouter": Host(
        defaults=ProviderDefaults(
            api_base="https://openrouter.ai/api/v1",
            api_base_env=("OPENROUTER_API_BASE",),
            api_key_env=("OPENROUTER_API_KEY",),
        ),
        legacy_max_tokens=False,
    ),
    "perplexity": Host(
        defaults=ProviderDefaults(
            api_base="https://api.perplexity.ai",
            api_base_env=("PERPLEXITY_API_BASE",),
            api_key_env=("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
        ),
        refused={
            "tools": "Perplexity's Sonar models do not call tools",
            "tool_choice": "Perplexity's Sonar models do not call tools",
            "logit_bias": "Perplexity has no logit bias",
            "logprobs": "Perplexity does not return log probabilities",
            "top_logprobs": "Perplexity does not return log probabilities",
            "thinking": _THINKING,
        },
    ),
    "hosted_vllm": Host(
        defaults=ProviderDefaults(
            api_base_env=("HOSTED_VLLM_API_BASE",),
            api_key_env=("HOSTED_VLLM_API_KEY",),
            requires_api_key=False,
        ),
        embeddings=True,
        continues_final_message=True,
    ),
    "ollama_chat": Host(
        defaults=ProviderDefaults(
            api_base="http://localhost:11434/v1",
            api_base_env=("OLLAMA_API_BASE",),
            api_key_env=("OLLAMA_API_KEY",),
            requires_api_key=False,
        ),
        refused={"logit_bias": "Ollama has no logit bias", "thinking": _THINKING},
        embeddings=True,
    ),
    # Hugging Face's router (serverless inference providers) and dedicated Inference
    # Endpoints / TGI servers both speak OpenAI's chat API under /v1.
    "huggingface": Host(
        defaults=ProviderDefaults(
            api_base="https://router.huggingface.co/v1",
            api_base_env=("HUGGINGFACE_API_BASE", "HF_API_BASE"),
            api_key_env=("HF_TOKEN", "HUGGINGFACE_API_KEY"),
        ),
        refused={"thinking": _THINKING},
    ),
    "lm_studio": Host(
        defaults=ProviderDefaults(
            api_base="http://localhost:1234/v1",
            api_base_env=("LM_STUDIO_API_BASE",),
            api_key_env=("LM_STUDIO_API_KEY",),
            requires_api_key=False,
        ),
        refused={"thinking": _THINKING},
        embeddings=True,
    ),
}


class CompatibleAdapter(OpenAIAdapter):
    """Base of the per-host adapter classes `adapter_class` builds from `HOSTS`."""

    host: ClassVar[Host]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Ollama's and LM Studio's OpenAI surfaces live under /v1; LiteLLM configs often give
        # the bare server address.
        # So do TGI endpoints (`https://<name>.endpoints.huggingface.cloud`).
        bare_base = ("ollama_chat", "lm_studio", "huggingface")
        if self.provider in bare_base and not self.base_url.endswith("/v1"):
            self.base_url += "/v1"

    def adapt_body(self, body: dict[str, Any], call: ChatCall) -> None:
        if self.host.legacy_max_tokens and "max_completion_tokens" in body:
            body.setdefault("max_tokens", body.pop("max_completion_tokens"))

    def continuation(self, call: ChatCall, prefix: str) -> Continued | str:
        if not self.host.continues_final_message:
            return NO_CONTINUATION
        # vLLM refuses continue_final_message together with add_generation_prompt (its
        # default), and answers with the new text only.
        fields = {"continue_final_message": True, "add_generation_prompt": False}
        return Continued(call=with_prefix(call, prefix, **fields))


@functools.cache
def adapter_class(provider: str) -> type[CompatibleAdapter]:
    host = HOSTS[provider]
    refused: Mapping[str, str] = host.refused
    return type(
        f"{provider.title().replace('_', '')}Adapter",
        (CompatibleAdapter,),
        {
            "provider": provider,
            "defaults": host.defaults,
            "host": host,
            "refused_params": refused,
            "renamed_params": host.renamed,
            "stream_usage": host.stream_usage,
            "supports_embeddings": host.embeddings,
        },
    )
