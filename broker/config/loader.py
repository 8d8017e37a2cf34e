"""The root `Config` and its loader, the only one: a LiteLLM proxy `config.yaml`, unchanged.

Loading goes: parse YAML -> merge `include`d files -> overlay `environment_variables` on the
process environment -> walk the tree (sort keys, resolve `os.environ/` references) ->
`msgspec.convert` into typed Structs -> settle cross-section defaults -> build each model
group's Deployments. Every step records what is wrong and carries on without it, so one load
finds every problem; any error then stops the start with an `InvalidConfig` listing them all,
each named by its path (issue #16).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import msgspec
import msgspec.inspect as mi
import yaml

from broker.config.deployments import build_deployments, check_default_params, warn_unknown_groups
from broker.config.env import overlay
from broker.config.errors import ConfigError, from_validation_error
from broker.config.problems import InvalidConfig, Problems, drop
from broker.config.tree import TreeWalk
from workers.deployment import Deployment, Secret
from workers.settings import (
    REQUEST_PARAM_KEYS,
    LiteLLMSettings,
    ModelEntry,
    RouterSettings,
    SwitchboardSettings,
)
from workers.settings.hooks import CallbackSettings, Guardrail
from workers.settings.routing import DEFAULT_ALLOWED_FAILS, DEFAULT_COOLDOWN_S
from workers.settings.section import Section, names

log = logging.getLogger("switchboard.config")

# LiteLLM's default when neither router_settings nor litellm_settings sets num_retries.
DEFAULT_NUM_RETRIES = 2
# The data directory, as `broker/admin_cli.py`'s `data_dir` finds it (that module imports
# this one late, for a fast CLI start, so the names are repeated rather than imported).
DATA_DIR_ENV = "SWITCHBOARD_DATA_DIR"
DEFAULT_DATA_DIR = Path("switchboard-data")
# Where the bundled demo config (data/demo.yaml) finds its fake model: `switchboard up --demo`
# starts the fake and sets this for every process it runs.
DEMO_UPSTREAM_ENV = "SWITCHBOARD_DEMO_UPSTREAM"


class GeneralSettings(Section, frozen=True):
    # The admin key clients may always use (`Authorization: Bearer <master_key>`).
    master_key: Secret | None = None
    # The system of record (issue #17): keys, users, teams, budgets, spend. Unset, the
    # environment's DATABASE_URL (LiteLLM's variable) is used; `up` defaults to SQLite.
    database_url: Secret | None = None
    database_connection_pool_limit: int = 10
    database_connection_timeout: float = 60.0

    litellm_ignored: ClassVar[frozenset[str]] = names(
        """
        completion_model disable_spend_logs disable_spend_updates disable_master_key_return
        disable_retry_on_max_parallel_request_limit_error disable_reset_budget
        disable_adding_master_key_hash_to_db disable_responses_id_security enable_jwt_auth
        enforce_user_param reject_clientside_metadata_tags allowed_routes
        key_management_system key_management_settings
        allow_requests_on_db_unavailable custom_auth max_parallel_requests
        global_max_parallel_requests infer_model_from_keys background_health_checks
        health_check_interval health_check_details alerting alerting_threshold alerting_args
        alert_types alert_to_webhook_url use_client_credentials_pass_through_routes
        public_routes admin_only_routes enforced_params enable_oauth2_auth
        enable_oauth2_proxy_auth oauth2_config_mappings use_x_forwarded_for
        service_account_settings image_generation_model embedding_model moderation_model
        store_model_in_db supported_db_objects user_mcp_management_mode
        store_prompts_in_spend_logs max_request_size_mb max_response_size_mb
        proxy_budget_rescheduler_min_time proxy_budget_rescheduler_max_time
        proxy_batch_write_at proxy_batch_polling_interval custom_key_generate allowed_ips
        default_team_disabled allow_user_auth user_api_key_cache_ttl
        disable_prisma_schema_update litellm_key_header_name custom_sso
        allow_client_side_credentials use_azure_key_vault use_google_kms
        spend_report_frequency ui_access_mode litellm_jwtauth litellm_license
        pass_through_endpoints forward_openai_org_id forward_client_headers_to_llm_api
        maximum_spend_logs_retention_period maximum_spend_logs_retention_interval
        use_redis_transaction_buffer use_shared_health_check disable_error_logs
        proxy_batch_write_at database_args mcp_* ui_* sso_* alert* health_check_*
        disable_* enable_* use_* allow_* proxy_* spend_* litellm_* key_* store_* reject_*
        enforce_* default_* custom_* forward_* maximum_* jwt_* prisma_* team_*
        token_* user_* max_* db_* role_* control_plane_url
        """
    )


class Config(Section, frozen=True):
    model_list: list[ModelEntry] = []
    # After loading: the effective routing values (litellm_settings' fill what this leaves unset).
    router_settings: RouterSettings = RouterSettings()
    litellm_settings: LiteLLMSettings = LiteLLMSettings()
    general_settings: GeneralSettings = GeneralSettings()
    # Set over the process environment before `os.environ/` references are resolved.
    environment_variables: dict[str, Secret] = {}
    switchboard_settings: SwitchboardSettings = SwitchboardSettings()
    # Where the built-in callbacks deliver (issue #19; workers/settings/hooks.py).
    callback_settings: CallbackSettings = CallbackSettings()
    # LiteLLM's guardrails (issue #19; workers/hooks/guardrails.py, broker/guardrails.py).
    guardrails: list[Guardrail] = []
    # Paths of the LiteLLM keys present but not implemented (each was logged as a warning).
    ignored_keys: tuple[str, ...] = ()
    # Every warning the load found as (path, message), ignored keys included; each was logged.
    warnings: tuple[tuple[str, str], ...] = ()
    # Model group name -> its deployments, in config order.
    deployments: dict[str, list[Deployment]] = {}

    derived_fields: ClassVar[frozenset[str]] = frozenset(
        {"ignored_keys", "warnings", "deployments"}
    )
    litellm_ignored: ClassVar[frozenset[str]] = names(
        """
        mcp_servers credential_list assistant_settings
        files_settings finetune_settings vector_store_registry search_tools prompts
        """
    )

    def entries(self, model_group: str) -> list[ModelEntry]:
        """A group's model_list entries, in the order of `deployments[model_group]`.

        Routing limits (rpm, tpm, weight, order, tags, max_parallel_requests) live on the
        entry, not the Deployment: zip the two to route."""
        return [entry for entry in self.model_list if entry.model_name == model_group]


def _struct_type(cls: type[Section]) -> mi.StructType:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return info


_CONFIG_TYPE = _struct_type(Config)


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load a LiteLLM proxy config file; `environ` defaults to the process environment."""
    return load_config_text(_read(path, ""), environ, base_dir=path.parent)


def load_config_text(
    text: str, environ: Mapping[str, str] | None = None, *, base_dir: Path | None = None
) -> Config:
    """Load a config from YAML text; `include`d files are found relative to `base_dir`.

    Raises `InvalidConfig` (a `ConfigError`) naming every problem found."""
    problems = Problems()
    raw = _include(_parse(text, ""), base_dir or Path.cwd())
    env = overlay(os.environ if environ is None else environ, raw.get("environment_variables"))
    if isinstance(raw.get("environment_variables"), dict):
        raw["environment_variables"] = {k: env[k] for k in raw["environment_variables"]}
    walk = TreeWalk(env)
    tree = walk.struct(raw, _CONFIG_TYPE, "")
    for exc in walk.errors:
        problems.error(exc)
    _gather_default_params(tree, walk.env_refs, problems)
    config, indices = _convert(tree, walk.env_refs, problems)
    for key_path in walk.ignored:
        problems.warn(key_path, "not implemented by Switchboard, ignored")
    warn_unknown_groups(
        config.router_settings, config.litellm_settings, _group_names(config), problems
    )
    config = _settle(_with_storage_dir(_with_database_url(config, env), env))
    _check_api_keys(config, problems)
    deployments = build_deployments(
        config.model_list, config.litellm_settings, config.router_settings, env, problems, indices
    )
    if not config.model_list and not problems.errors:
        problems.warn("model_list", "no models: every request will be answered 404")
    if problems.errors:
        raise InvalidConfig(problems.errors, problems.warnings)
    for warning in problems.warnings:
        log.warning("%s", warning)
    return msgspec.structs.replace(
        config,
        ignored_keys=tuple(walk.ignored),
        warnings=tuple((w.path, w.message) for w in problems.warnings),
        deployments=deployments,
    )


def load_demo_config(environ: Mapping[str, str] | None = None) -> Config:
    """The bundled demo config; `environ` must set DEMO_UPSTREAM_ENV (the fake's URL)."""
    text = resources.files("broker").joinpath("data/demo.yaml").read_text(encoding="utf-8")
    return load_config_text(text, environ)


def _read(path: Path, where: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(where, f"cannot read {path}: {exc.strerror}") from None


def _parse(text: str, where: str) -> dict[Any, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # The problem, never the snippet: the offending line may hold a key.
        mark = exc.problem_mark
        place = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(where, f"invalid YAML at {place}{exc.problem}") from None
    except yaml.YAMLError:
        raise ConfigError(where, "invalid YAML") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(where, "expected a mapping of sections (model_list, ...)")
    return document


def _include(raw: dict[Any, Any], base_dir: Path) -> dict[Any, Any]:
    """LiteLLM's `include`: each file's lists extend ours, its other keys replace ours."""
    files = raw.pop("include", None)
    if files is None:
        return raw
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ConfigError("include", "expected a file name or a list of file names")
    for i, name in enumerate(files):
        included = _parse(_read(base_dir / name, f"include[{i}]"), f"include[{i}]")
        for key, value in included.items():
            if isinstance(value, list) and isinstance(raw.get(key), list):
                raw[key] = [*raw[key], *value]
            else:
                raw[key] = value
    return raw


def _gather_default_params(
    tree: dict[str, Any], env_refs: Mapping[str, str], problems: Problems
) -> None:
    """Move each deployment's request parameters (temperature, ...) into `default_params`."""
    entries = tree.get("model_list")
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        params = entry.get("litellm_params") if isinstance(entry, dict) else None
        if not isinstance(params, dict):
            continue
        path = f"model_list[{i}].litellm_params"
        defaults = {k: params.pop(k) for k in list(params) if k in REQUEST_PARAM_KEYS}
        extra_body = defaults.pop("extra_body", None)
        if extra_body is not None and not isinstance(extra_body, dict):
            problems.error(ConfigError(f"{path}.extra_body", "expected mapping"))
            extra_body = None
        # LiteLLM merges extra_body into the request; the named parameters win.
        defaults = {**(extra_body or {}), **defaults}
        try:
            check_default_params(defaults, path, env_refs)
        except ConfigError as exc:
            problems.error(exc)
            defaults = {}
        params["default_params"] = defaults


def _convert(
    tree: dict[str, Any], env_refs: Mapping[str, str], problems: Problems
) -> tuple[Config, list[int]]:
    """The typed Config, less whatever was wrong; and each kept entry's index in model_list.

    Entries convert one at a time, so a bad one is left out without hiding the others."""
    entries = tree.pop("model_list", [])
    config = _convert_part(tree, Config, "", env_refs, problems) or Config()
    if not isinstance(entries, list):
        problems.error(ConfigError("model_list", "expected list"))
        entries = []
    model_list: list[ModelEntry] = []
    indices: list[int] = []
    for i, entry in enumerate(entries):
        converted = _convert_part(entry, ModelEntry, f"model_list[{i}]", env_refs, problems)
        if converted is not None:
            model_list.append(converted)
            indices.append(i)
    return msgspec.structs.replace(config, model_list=model_list), indices


_T = TypeVar("_T")
# A bound on fix-and-retry rounds per part; each round drops a key, so it is rarely reached.
_MAX_ROUNDS = 100


def _convert_part(
    value: Any, kind: type[_T], prefix: str, env_refs: Mapping[str, str], problems: Problems
) -> _T | None:
    """Convert `value`; on each error, record it, drop the key it names and try again."""
    for _ in range(_MAX_ROUNDS):
        try:
            return msgspec.convert(value, kind, dec_hook=_decode_custom)
        except msgspec.ValidationError as exc:
            error = from_validation_error(exc, env_refs, prefix=prefix)
            if not problems.covers(error.path):
                problems.error(error)
            inner = error.path[len(prefix) :] if prefix else error.path
            if not drop(value, inner):
                return None
    return None


def _decode_custom(kind: type, value: Any) -> Any:
    if kind is Secret:
        if isinstance(value, str):
            return value if isinstance(value, Secret) else Secret(value)
        found = {dict: "object", list: "array", bool: "bool", int: "int", float: "float"}
        raise TypeError(f"Expected `str`, got `{found.get(type(value), 'null')}`")
    raise NotImplementedError(kind)


def _settle(config: Config) -> Config:
    """Apply the rules that span sections, once, so consumers read one place."""
    return msgspec.structs.replace(
        config,
        model_list=[_settle_entry(entry) for entry in config.model_list],
        router_settings=_effective_router(config.router_settings, config.litellm_settings),
        switchboard_settings=_effective_switchboard(
            config.switchboard_settings, config.router_settings
        ),
    )


def _settle_entry(entry: ModelEntry) -> ModelEntry:
    params, info = entry.litellm_params, entry.model_info
    settled = msgspec.structs.replace(
        params,
        api_base=params.api_base or params.base_url,
        rpm=_first(params.rpm, entry.rpm, info.rpm),
        tpm=_first(params.tpm, entry.tpm, info.tpm),
    )
    return msgspec.structs.replace(entry, litellm_params=settled)


def _effective_router(router: RouterSettings, litellm: LiteLLMSettings) -> RouterSettings:
    # LiteLLM: "settings on router_settings will override those on litellm_settings".
    # allowed_fails and cooldown_time have defaults, so litellm_settings' values apply
    # when router_settings leaves the default in place.
    return msgspec.structs.replace(
        router,
        num_retries=_first(router.num_retries, litellm.num_retries, DEFAULT_NUM_RETRIES),
        timeout=_first(router.timeout, litellm.request_timeout),
        fallbacks=_first(router.fallbacks, litellm.fallbacks),
        context_window_fallbacks=_first(
            router.context_window_fallbacks, litellm.context_window_fallbacks
        ),
        content_policy_fallbacks=_first(
            router.content_policy_fallbacks, litellm.content_policy_fallbacks
        ),
        default_fallbacks=_first(router.default_fallbacks, litellm.default_fallbacks),
        allowed_fails=_unless_default(
            router.allowed_fails, DEFAULT_ALLOWED_FAILS, litellm.allowed_fails
        ),
        cooldown_time=_unless_default(
            router.cooldown_time, DEFAULT_COOLDOWN_S, litellm.cooldown_time
        ),
        model_group_alias={**litellm.model_group_alias, **router.model_group_alias},
    )


def _unless_default(value: Any, default: Any, fallback: Any) -> Any:
    return fallback if value == default and fallback is not None else value


def _effective_switchboard(
    settings: SwitchboardSettings, router: RouterSettings
) -> SwitchboardSettings:
    """A LiteLLM config that names a Redis for shared router state gets it as our Redis."""
    if settings.redis_url is not None:
        return settings
    if router.redis_url is not None:
        return msgspec.structs.replace(settings, redis_url=router.redis_url)
    if router.redis_host is None:
        return settings
    password = f":{quote(router.redis_password, safe='')}@" if router.redis_password else ""
    url = (
        f"redis://{password}{router.redis_host}:{router.redis_port or 6379}/{router.redis_db or 0}"
    )
    return msgspec.structs.replace(settings, redis_url=Secret(url))


def _with_storage_dir(config: Config, env: Mapping[str, str]) -> Config:
    """Files live in `files/` of the data directory `up` uses unless the config names a
    directory (issue #20)."""
    settings = config.switchboard_settings
    if settings.files.storage_dir is not None:
        return config
    data_dir = Path(env.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    files = msgspec.structs.replace(settings.files, storage_dir=str(data_dir / "files"))
    settings = msgspec.structs.replace(settings, files=files)
    return msgspec.structs.replace(config, switchboard_settings=settings)


def _with_database_url(config: Config, env: Mapping[str, str]) -> Config:
    """LiteLLM's precedence: general_settings.database_url, else DATABASE_URL."""
    general = config.general_settings
    if general.database_url is not None or not env.get("DATABASE_URL"):
        return config
    database_url = Secret(env["DATABASE_URL"])
    general = msgspec.structs.replace(general, database_url=database_url)
    return msgspec.structs.replace(config, general_settings=general)


def _check_api_keys(config: Config, problems: Problems) -> None:
    """A key's model list names model groups or their aliases (a typo would lock it out),
    and no key is the master key (it would silently get the master key's powers)."""
    known = _group_names(config) | set(config.router_settings.model_group_alias)
    master_key = config.general_settings.master_key
    for i, api_key in enumerate(config.switchboard_settings.api_keys):
        if master_key is not None and str(api_key.key) == str(master_key):
            problems.error(
                ConfigError(
                    f"switchboard_settings.api_keys[{i}].key", "is general_settings.master_key"
                )
            )
        for j, model in enumerate(api_key.models):
            if model not in known:
                problems.error(
                    ConfigError(
                        f"switchboard_settings.api_keys[{i}].models[{j}]",
                        f"no model group or alias named {model!r}",
                    )
                )


def _group_names(config: Config) -> set[str]:
    return {entry.model_name for entry in config.model_list}


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
