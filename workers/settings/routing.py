"""`router_settings` and `litellm_settings`: how requests are routed, retried and failed over.

LiteLLM lets both sections set retries, timeouts and fallbacks, with router_settings winning;
the loader applies that rule once, so after loading `RouterSettings` holds the effective
values and nothing else needs to consult `LiteLLMSettings` for them.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from msgspec import Meta

from workers import durations
from workers.deployment import Secret
from workers.settings.hooks import CacheParams, TeamCallbacks
from workers.settings.section import Section, names

RoutingStrategy = Literal[
    "simple-shuffle",
    "round-robin",
    "least-busy",
    "latency-based-routing",
    "cost-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
]

# LiteLLM's shape: `[{"gpt-4o": ["claude-sonnet", "gpt-4o-mini"]}, ...]`; a key of `*`
# applies to every model group without rules of its own.
FallbackRules = list[dict[str, list[str]]]

NonNegativeInt = Annotated[int, Meta(ge=0)]
# LiteLLM's defaults; litellm_settings' values apply where router_settings keeps them.
DEFAULT_ALLOWED_FAILS = 3
DEFAULT_COOLDOWN_S = 5.0
NonNegativeFloat = Annotated[float, Meta(ge=0)]


class RoutingStrategyArgs(Section, frozen=True):
    # latency-based-routing: deployments within this fraction of the fastest count as tied
    # and share traffic (0.1 = within 10%).
    lowest_latency_buffer: NonNegativeFloat = 0.0
    # Seconds a latency or usage sample counts towards routing decisions.
    ttl: NonNegativeFloat = 3600.0

    litellm_ignored: ClassVar[frozenset[str]] = names("max_latency_list_size")


class RetryPolicy(Section, frozen=True):
    """Retries per error class (LiteLLM's names), overriding num_retries for that class."""

    BadRequestErrorRetries: NonNegativeInt | None = None
    AuthenticationErrorRetries: NonNegativeInt | None = None
    TimeoutErrorRetries: NonNegativeInt | None = None
    RateLimitErrorRetries: NonNegativeInt | None = None
    ContentPolicyViolationErrorRetries: NonNegativeInt | None = None
    InternalServerErrorRetries: NonNegativeInt | None = None
    ServiceUnavailableErrorRetries: NonNegativeInt | None = None
    NotFoundErrorRetries: NonNegativeInt | None = None
    DefaultRetries: NonNegativeInt | None = None


class AllowedFailsPolicy(Section, frozen=True):
    """Failures per error class a deployment may have per minute before it cools down."""

    BadRequestErrorAllowedFails: NonNegativeInt | None = None
    AuthenticationErrorAllowedFails: NonNegativeInt | None = None
    TimeoutErrorAllowedFails: NonNegativeInt | None = None
    RateLimitErrorAllowedFails: NonNegativeInt | None = None
    ContentPolicyViolationErrorAllowedFails: NonNegativeInt | None = None
    InternalServerErrorAllowedFails: NonNegativeInt | None = None
    ServiceUnavailableErrorAllowedFails: NonNegativeInt | None = None
    BadGatewayErrorAllowedFails: NonNegativeInt | None = None
    NotFoundErrorAllowedFails: NonNegativeInt | None = None


class ModelGroupAlias(Section, frozen=True):
    """The long form of a model_group_alias value; a hidden alias is not listed in /models."""

    model: str
    hidden: bool = False


class RouterSettings(Section, frozen=True):
    routing_strategy: RoutingStrategy = "simple-shuffle"
    routing_strategy_args: RoutingStrategyArgs = RoutingStrategyArgs()
    # Retries of a failed request within its model group (each may pick another
    # deployment). Unset: litellm_settings.num_retries, else 2 (LiteLLM's default).
    num_retries: NonNegativeInt | None = None
    # Seconds for one attempt; unset: litellm_settings.request_timeout, else bounded only
    # by switchboard_settings.request_timeout_s.
    timeout: NonNegativeFloat | None = None
    # Seconds for one streaming attempt; unset: timeout.
    stream_timeout: NonNegativeFloat | None = None
    # Minimum seconds before a retry, unless the provider's Retry-After says otherwise.
    retry_after: NonNegativeFloat = 0.0
    # Failures a deployment may have per minute before it cools down.
    allowed_fails: NonNegativeInt = DEFAULT_ALLOWED_FAILS
    allowed_fails_policy: AllowedFailsPolicy | None = None
    # Seconds a deployment stays out of rotation after exceeding allowed_fails.
    cooldown_time: NonNegativeFloat = DEFAULT_COOLDOWN_S
    disable_cooldowns: bool = False
    retry_policy: RetryPolicy | None = None
    # Unset (None) inherits litellm_settings' value.
    fallbacks: FallbackRules | None = None
    context_window_fallbacks: FallbackRules | None = None
    content_policy_fallbacks: FallbackRules | None = None
    # Model groups to try when a group has no fallbacks of its own.
    default_fallbacks: list[str] | None = None
    # Fallback groups tried per request at most.
    max_fallbacks: NonNegativeInt = 5
    # Extra names for model groups: alias -> group, or {model: group, hidden: true}.
    model_group_alias: dict[str, str | ModelGroupAlias] = {}
    # Skip deployments whose context window (model_info.max_input_tokens) the request exceeds.
    enable_pre_call_checks: bool = False
    # Route only to deployments carrying the request's tags (litellm_params.tags).
    enable_tag_filtering: bool = False
    # With tag filtering: True matches a deployment with any requested tag, False needs all.
    tag_filtering_match_any: bool = True
    # Requests in flight per deployment when litellm_params.max_parallel_requests is unset.
    default_max_parallel_requests: Annotated[int, Meta(ge=1)] | None = None
    # LiteLLM's Redis for state shared between proxy instances; Switchboard uses it as its
    # own Redis when switchboard_settings.redis_url is unset.
    redis_url: Secret | None = None  # may carry a password
    redis_host: str | None = None
    # LiteLLM documents the port as a string, so configs quote it either way.
    redis_port: int | str | None = None
    redis_password: Secret | None = None
    redis_db: NonNegativeInt | None = None

    litellm_ignored: ClassVar[frozenset[str]] = names(
        """
        cache_responses cache_kwargs caching_groups client_ttl alerting_config
        assistants_config provider_budget_config model_group_retry_policy
        model_group_affinity_config router_general_settings optional_pre_call_checks
        deployment_affinity_ttl_seconds ignore_invalid_deployments search_tools
        guardrail_list routing_groups default_litellm_params debug_level set_verbose
        polling_interval default_priority weights tag_routing_prefix max_retries
        redis_transaction_buffer* cache_* disable_* enable_* pre_call_checks
        """
    )


class LiteLLMSettings(Section, frozen=True):
    """LiteLLM's module-level settings; router_settings' values win where both are set."""

    # Drop request parameters a provider cannot honor instead of refusing the request.
    drop_params: bool = False
    num_retries: NonNegativeInt | None = None
    # Seconds for one attempt (LiteLLM's litellm.request_timeout).
    request_timeout: NonNegativeFloat | None = None
    fallbacks: FallbackRules | None = None
    context_window_fallbacks: FallbackRules | None = None
    content_policy_fallbacks: FallbackRules | None = None
    default_fallbacks: list[str] | None = None
    # Debug logging (deprecated in LiteLLM in favour of LITELLM_LOG, still honored here).
    set_verbose: bool = False
    # Log lines as JSON objects.
    json_logs: bool = False
    # As router_settings' keys of the same names, which win when set.
    allowed_fails: NonNegativeInt | None = None
    cooldown_time: NonNegativeFloat | None = None
    model_group_alias: dict[str, str | ModelGroupAlias] = {}
    # The whole proxy's budget (USD) and its period (issue #17); every request counts.
    max_budget: NonNegativeFloat | None = None
    budget_duration: str | None = None
    # The budget of an end user (the request's `user`) that has none of its own.
    max_end_user_budget: NonNegativeFloat | None = None

    # Callbacks (issue #19, docs/hooks.md): built-in names (jsonl, webhook) or import paths
    # to a function or a CustomLogger instance (custom_callbacks.proxy_handler_instance).
    # `callbacks` takes CustomLoggers, called on success and failure alike.
    success_callback: list[str] = []
    failure_callback: list[str] = []
    callbacks: list[str] = []
    # Callbacks see no message, input or answer text (figures stay).
    turn_off_message_logging: bool = False
    # Per-team callbacks (LiteLLM's team-based logging): a team's requests also go to these.
    default_team_settings: list[TeamCallbacks] = []
    # The response cache (issue #19, docs/hooks.md): identical requests answered from
    # Redis by the front door, without a worker or an upstream call.
    cache: bool = False
    cache_params: CacheParams = CacheParams()

    def __post_init__(self) -> None:
        if self.budget_duration is not None:
            durations.check(self.budget_duration)  # a ValueError names the field

    litellm_ignored: ClassVar[frozenset[str]] = names(
        """
        service_callbacks input_callback callback_settings redact_messages_in_exceptions
        redact_user_api_key_info langfuse_default_tags modify_params enable_preview_features
        mcp_aliases force_ipv4 disable_end_user_cost_tracking
        disable_end_user_cost_tracking_prometheus_only key_generation_settings
        disable_add_transform_inline_image_block use_chat_completions_url_for_anthropic_messages
        disable_hf_tokenizer_download enable_json_schema_validation
        enable_key_alias_format_validation disable_copilot_system_to_assistant telemetry
        max_internal_user_budget internal_user_budget_duration
        default_internal_user_params
        default_key_generate_params upperbound_key_generate_params public_teams
        model_alias_map ssl_verify ssl_certificate return_response_headers
        disable_token_counter add_function_to_prompt guardrails
        prometheus_initialize_budget_metrics max_parallel_requests retry_policy
        enable_caching_on_provider_specific_optional_params
        context_window_fallback_dict *_callback *_callbacks *_callback_params redact_* langfuse_*
        disable_* enable_* default_* max_* mcp_* ssl_* prometheus_* datadog_* s3_* gcs_*
        log_* public_* upperbound_* aiohttp_* use_* num_retries_per_request
        """
    )
