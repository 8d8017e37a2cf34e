"""`model_list[]`: one entry per deployment, grouped by `model_name` into model groups.

Field names are LiteLLM's (`litellm_params`, `model_info`), so a LiteLLM proxy config loads
unchanged; `broker/config/loader.py` turns each entry into a `workers.deployment.Deployment`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

from workers.deployment import Secret
from workers.settings.section import Section, names
from workers.wire import ChatCompletionRequest, EmbeddingRequest

# OpenAI request fields that make no sense as a deployment default: the request itself, or
# who sent it. `metadata` in litellm_params is LiteLLM's logging metadata, not OpenAI's.
_NOT_DEFAULTS = frozenset({"model", "messages", "input", "stream", "stream_options", "user"})
# Provider-specific request parameters LiteLLM users set per deployment; the adapter decides
# whether its provider honors them (or refuses them, unless drop_params).
_PROVIDER_PARAMS = names("top_k min_p repetition_penalty safety_settings")

# Keys of `litellm_params` that become the deployment's default request parameters (applied
# when a request does not set them), as LiteLLM does with every key it does not consume.
# `extra_body` is flattened into them.
REQUEST_PARAM_KEYS: frozenset[str] = (
    (
        frozenset(f.encode_name for f in msgspec.structs.fields(ChatCompletionRequest))
        | frozenset(f.encode_name for f in msgspec.structs.fields(EmbeddingRequest))
        | _PROVIDER_PARAMS
        | {"extra_body"}
    )
    - _NOT_DEFAULTS
    - {"metadata"}
)

# Keys of `litellm_params` that reach the adapter as `Deployment.options`.
DEPLOYMENT_OPTION_KEYS: tuple[str, ...] = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region_name",
    "aws_profile_name",
    "aws_role_name",
    "aws_session_name",
    "aws_bedrock_runtime_endpoint",
    "azure_ad_token",
    "vertex_project",
    "vertex_location",
    "vertex_credentials",
    "responses_api",
)


class LiteLLMParams(Section, frozen=True):
    """How to reach one deployment, and the limits the router applies to it."""

    # `provider/model` (`azure/<deployment name>`); a bare well-known name gets its provider.
    model: str
    # LiteLLM's way to name the provider separately: `openai` + `my-model` = `openai/my-model`.
    custom_llm_provider: str | None = None
    api_base: str | None = None
    # LiteLLM accepts the OpenAI SDK's name too; the loader folds it into api_base.
    base_url: str | None = None
    api_key: Secret | None = None
    api_version: str | None = None
    organization: str | None = None
    # Requests and tokens per minute this deployment may take; None: unlimited.
    rpm: int | None = None
    tpm: int | None = None
    # Seconds for one upstream attempt; None: router_settings.timeout / stream_timeout.
    timeout: float | None = None
    stream_timeout: float | None = None
    # Requests in flight at once on this deployment; None: router default_max_parallel_requests.
    max_parallel_requests: int | None = None
    # Retries inside one attempt at the HTTP client level (LiteLLM's SDK max_retries).
    max_retries: int | None = None
    # simple-shuffle picks deployments in proportion to weight.
    weight: float | None = None
    # Lower order is tried first; higher orders only when all lower ones are unavailable.
    order: int | None = None
    # USD per token, overriding the price table (LiteLLM's custom pricing).
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    # None: litellm_settings.drop_params.
    drop_params: bool | None = None
    # Whether a stream whose worker died continues on another worker (where the provider
    # can continue a partial answer); None: switchboard_settings.stream_continuation.
    stream_continuation: bool | None = None
    # LiteLLM's test and health-check knobs: answer with this text without calling the
    # provider; or fail every attempt as timed out.
    mock_response: str | None = None
    mock_timeout: bool = False
    extra_headers: dict[str, str] = {}
    # For tag-based routing (router_settings.enable_tag_filtering).
    tags: list[str] = []
    # For region-restricted routing (LiteLLM's `allowed_model_region`).
    region_name: str | None = None
    aws_access_key_id: Secret | None = None
    aws_secret_access_key: Secret | None = None
    aws_session_token: Secret | None = None
    aws_region_name: str | None = None
    aws_profile_name: str | None = None
    aws_role_name: str | None = None
    aws_session_name: str | None = None
    aws_bedrock_runtime_endpoint: str | None = None
    azure_ad_token: Secret | None = None
    vertex_project: str | None = None
    vertex_location: str | None = None
    # A Google service account's JSON key, or a path to it; None: Application Default
    # Credentials (workers/providers/vertex/auth.py).
    vertex_credentials: Secret | None = None
    # Switchboard's own: how an OpenAI or Azure deployment serves /v1/responses — `native`
    # (its own /responses endpoint, the reply relayed unchanged, the gateway keeping only
    # whose each response id is; the default for OpenAI, and for Azure from api-version
    # 2025-03-01 or on its v1 surface) or `translate` (`chat` is the same: through chat
    # completions, the gateway storing the responses and their previous_response_id
    # chains). docs/ingress.md.
    responses_api: Literal["native", "translate", "chat"] | None = None
    # Filled by the loader from the request-parameter keys (temperature, max_tokens, ...).
    default_params: dict[str, Any] = {}

    passthrough_keys: ClassVar[frozenset[str]] = REQUEST_PARAM_KEYS
    derived_fields: ClassVar[frozenset[str]] = frozenset({"default_params"})
    litellm_ignored: ClassVar[frozenset[str]] = names(
        """
        itpm otpm num_retries cooldown_time metadata mock_testing_*
        model_info prompt_id cache_control_injection_points additional_drop_params
        litellm_metadata guardrails fallbacks context_window_fallback_dict
        configurable_clientside_auth_params litellm_credential_name provider_affinity_header
        litellm_trace_id max_file_size_mb default_api_key_tpm_limit default_api_key_rpm_limit
        max_budget budget_duration keepalive_seconds allow_client_keepalive_override
        use_in_pass_through use_litellm_proxy use_chat_completions_api use_xai_oauth
        merge_reasoning_content_in_choices tag_regex auto_router_* complexity_router_*
        adaptive_router_* quality_router_* tenant_id client_id client_secret azure_scope
        azure_username azure_password gcs_bucket_name bucket_name
        aws_web_identity_token aws_sts_endpoint aws_external_id aws_session_tags
        aws_bedrock_project_id aws_batch_role_arn s3_* bedrock_tags watsonx_region_name
        vector_store_id milvus_* valkey_* vector_bucket_name index_name embedding_model
        input_cost_per_* output_cost_per_* cache_read_input_token_cost*
        cache_creation_input_token_cost* tiered_pricing
        """
    )


class ModelInfo(Section, frozen=True):
    """What is known about the model behind a deployment: limits, prices, capabilities."""

    # A unique deployment id; names the deployment in logs, metrics and headers.
    id: str | None = None
    # The model whose prices and context window apply (an Azure deployment name says
    # nothing about its model).
    base_model: str | None = None
    # chat, completion, embedding, image_generation, audio_transcription, rerank, ...
    # LiteLLM's `batch` marks a batch model: on an OpenAI or Anthropic deployment it means
    # batch_mode `native`, unless batch_mode says otherwise.
    mode: str | None = None
    # Where /v1/batches runs this deployment's lines (issue #20, docs/batches.md): `queue`
    # (Switchboard's own batch lane) or `native` (the provider's batch API, OpenAI and
    # Anthropic only, usually half price). Unset: `native` for mode `batch`, else `queue`.
    batch_mode: Literal["queue", "native"] | None = None
    max_tokens: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    # USD per token; litellm_params' values win when both are set.
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None
    cache_creation_input_token_cost: float | None = None
    output_cost_per_reasoning_token: float | None = None
    # LiteLLM's routers also read limits from model_info; litellm_params' values win.
    rpm: int | None = None
    tpm: int | None = None
    supports_system_messages: bool | None = None
    supports_response_schema: bool | None = None
    supports_vision: bool | None = None
    supports_function_calling: bool | None = None
    supports_parallel_function_calling: bool | None = None
    supports_tool_choice: bool | None = None
    supports_assistant_prefill: bool | None = None
    supports_prompt_caching: bool | None = None
    supports_computer_use: bool | None = None
    supports_audio_input: bool | None = None
    supports_audio_output: bool | None = None
    supports_embedding_image_input: bool | None = None
    supports_pdf_input: bool | None = None
    supports_native_streaming: bool | None = None
    supports_web_search: bool | None = None
    supports_reasoning: bool | None = None
    supports_url_context: bool | None = None
    # Every other key, kept as written: LiteLLM's model_info is free-form (`version`,
    # `supported_endpoints`, a team's own labels), and /model/info shows it back.
    extra: dict[str, Any] = {}

    derived_fields: ClassVar[frozenset[str]] = frozenset({"extra"})
    free_form_field: ClassVar[str] = "extra"
    litellm_ignored: ClassVar[frozenset[str]] = names(
        """
        db_model updated_at updated_by created_at created_by tier team_id
        team_public_model_name member_auto_router blocked discoverable access_windows
        access_groups description metadata key litellm_provider supported_openai_params
        supported_reasoning_efforts deprecation_date ptu_count cost_per_ptu_per_hour
        ptu_effective_from ptu_effective_to allow_fail_open enable_tag_filtering
        internal_router_model health_check_model health_check_timeout
        input_cost_per_* output_cost_per_* cache_read_input_token_cost*
        cache_creation_input_token_cost* search_context_cost_per_query tiered_pricing
        regional_processing_uplift_multiplier_* supports_*
        """
    )


class ModelEntry(Section, frozen=True):
    """One `model_list` item: a deployment serving the model group `model_name`."""

    # The model group clients ask for; entries sharing it are load-balanced.
    model_name: str
    litellm_params: LiteLLMParams
    model_info: ModelInfo = ModelInfo()
    # Where old LiteLLM configs put a deployment's limits; the loader folds them into
    # litellm_params when that leaves them unset.
    rpm: int | None = None
    tpm: int | None = None
