"""The management API's request bodies, with LiteLLM's field names (`litellm/proxy/_types.py`:
GenerateKeyRequest, UpdateKeyRequest, KeyRequest, NewUserRequest, NewTeamRequest,
TeamMemberAddRequest, NewOrganizationRequest, NewCustomerRequest, BudgetNewRequest, ...), so
LiteLLM's admin scripts and Python client send what they always sent. The OpenAPI document's
request schemas are generated from these Structs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, get_args

import msgspec
from msgspec import Meta

from broker.management.bodies import Body
from workers import durations
from workers.db.plain import ROLES
from workers.errors import InvalidRequest

Id = Annotated[str, Meta(min_length=1, max_length=255)]
Name = Annotated[str, Meta(max_length=255)]
Usd = Annotated[float, Meta(ge=0, le=1e12)]
PerMinute = Annotated[int, Meta(ge=0, le=2**53)]
Parallel = Annotated[int, Meta(ge=0, le=1_000_000)]
Duration = Annotated[str, Meta(min_length=1, max_length=16)]
Names = Annotated[list[Id], Meta(max_length=1000)]
Ids = Annotated[list[Id], Meta(min_length=1, max_length=1000)]
Role = Literal["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"]
TeamRole = Literal["admin", "user"]
assert set(get_args(Role)) == set(ROLES)

# LiteLLM fields of every budgeted entity that Switchboard does not implement.
UNIMPLEMENTED_LIMITS = frozenset(
    {"model_rpm_limit", "model_tpm_limit", "budget_limits", "object_permission"}
)


def _check_durations(body: Any, *names: str) -> None:
    for name in names:
        value = getattr(body, name)
        if value is None:
            continue
        try:
            durations.check(value)
        except ValueError as exc:
            raise InvalidRequest(f"invalid `{name}`: {exc}", param=name) from None


class ModelBudgetEntry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One model_max_budget entry in LiteLLM's long form (its BudgetConfig's budget fields:
    `budget_limit`/`time_period`, or `max_budget`/`budget_duration` as budget rows say)."""

    budget_limit: Usd | None = None
    max_budget: Usd | None = None
    time_period: Duration | None = None
    budget_duration: Duration | None = None


# {"gpt-4o": 5.0}, {"openai/*": {"budget_limit": 5.0, "time_period": "1d"}}: a model group,
# a model, or a `*` pattern of them (docs/tenancy.md says which entry a request counts
# against) -> its budget in USD.
ModelBudgets = Annotated[dict[Id, Usd | dict[str, Any]], Meta(max_length=1000)]


def check_model_budgets(budgets: dict[str, Any] | None, name: str) -> None:
    """Each long-form entry names a limit, in LiteLLM's words, and a valid period."""
    for model, value in (budgets or {}).items():
        if not isinstance(value, dict):
            continue
        param = f"{name}.{model}"
        try:
            entry = msgspec.convert(value, ModelBudgetEntry)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"invalid `{param}`: {exc}", param=param) from None
        if entry.budget_limit is None and entry.max_budget is None:
            raise InvalidRequest(f"`{param}` needs a `budget_limit`", param=param)
        for period in (entry.time_period, entry.budget_duration):
            if period is None:
                continue
            try:
                durations.check(period)
            except ValueError as exc:
                raise InvalidRequest(f"invalid `{param}`: {exc}", param=param) from None


class Limits(Body, kw_only=True):
    """The limits of keys, users, teams, organizations, end users and budgets."""

    max_budget: Usd | None = None
    soft_budget: Usd | None = None
    budget_duration: Duration | None = None
    rpm_limit: PerMinute | None = None
    tpm_limit: PerMinute | None = None
    max_parallel_requests: Parallel | None = None
    model_max_budget: ModelBudgets | None = None

    litellm_unimplemented: ClassVar[frozenset[str]] = UNIMPLEMENTED_LIMITS

    def check(self) -> None:
        _check_durations(self, "budget_duration")
        check_model_budgets(self.model_max_budget, "model_max_budget")


class KeyFields(Limits, kw_only=True):
    key_alias: Name | None = None
    models: Names | None = None
    duration: Duration | None = None  # the key expires this long after now
    team_id: Id | None = None
    user_id: Id | None = None
    organization_id: Id | None = None
    budget_id: Id | None = None
    metadata: dict[str, Any] | None = None
    tags: Names | None = None
    allowed_routes: Names | None = None
    blocked: bool | None = None
    spend: Usd | None = None
    key_type: Literal["default"] | None = None
    # The config's guardrails every request with this key runs (kept in metadata.guardrails,
    # as LiteLLM keeps them).
    guardrails: Names | None = None

    litellm_unimplemented: ClassVar[frozenset[str]] = UNIMPLEMENTED_LIMITS | frozenset(
        """aliases config permissions policies prompts allowed_cache_controls
        enforced_params allowed_passthrough_routes allowed_vector_store_indexes rpm_limit_type
        tpm_limit_type router_settings access_group_ids agent_id project_id auto_rotate
        rotation_interval send_invite_email temp_budget_increase temp_budget_expiry""".split()
    )

    def check(self) -> None:
        _check_durations(self, "budget_duration", "duration")
        check_model_budgets(self.model_max_budget, "model_max_budget")


class GenerateKeyRequest(KeyFields, kw_only=True):
    # A key of the caller's choosing (LiteLLM's `key`); generated when absent.
    key: Annotated[str, Meta(min_length=8, max_length=255, pattern="^sk-")] | None = None
    # LiteLLM's own client sends `api_key` (KeysManagementClient.generate); LiteLLM ignores it.
    litellm_ignored: ClassVar[frozenset[str]] = frozenset({"api_key"})


class UpdateKeyRequest(KeyFields, kw_only=True):
    key: Id  # the key, or its hash as /key/list shows it


class RegenerateKeyRequest(KeyFields, kw_only=True):
    key: Id | None = None  # absent when the path names the key
    new_key: Annotated[str, Meta(min_length=8, max_length=255, pattern="^sk-")] | None = None
    litellm_unimplemented: ClassVar[frozenset[str]] = KeyFields.litellm_unimplemented | {
        "grace_period",
        "new_master_key",
    }


class KeyRequest(Body, kw_only=True):
    keys: Names | None = None
    key_aliases: Names | None = None


class BlockKeyRequest(Body, kw_only=True):
    key: Id


class NewUserTeam(Body, kw_only=True):
    team_id: Id
    max_budget_in_team: Usd | None = None
    user_role: TeamRole = "user"


class UserFields(Limits, kw_only=True):
    user_email: Name | None = None
    user_alias: Name | None = None
    user_role: Role | None = None
    models: Names | None = None
    metadata: dict[str, Any] | None = None
    organization_id: Id | None = None
    spend: Usd | None = None

    litellm_unimplemented: ClassVar[frozenset[str]] = UNIMPLEMENTED_LIMITS | frozenset(
        """password sso_user_id send_invite_email organizations guardrails policies prompts
        allowed_cache_controls config permissions aliases duration key_alias team_id
        agent_id""".split()
    )


class NewUserRequest(UserFields, kw_only=True):
    user_id: Id | None = None
    teams: list[Id | NewUserTeam] | None = None
    # LiteLLM creates a key for the new user unless told not to; the key is in the response.
    auto_create_key: bool = True
    litellm_unimplemented: ClassVar[frozenset[str]] = UserFields.litellm_unimplemented - {
        "duration",
        "key_alias",
    }
    duration: Duration | None = None  # of the auto-created key
    key_alias: Name | None = None  # of the auto-created key

    def check(self) -> None:
        _check_durations(self, "budget_duration", "duration")
        check_model_budgets(self.model_max_budget, "model_max_budget")


class UpdateUserRequest(UserFields, kw_only=True):
    user_id: Id | None = None  # or user_email names the user


class DeleteUserRequest(Body, kw_only=True):
    user_ids: Ids


class Member(Body, kw_only=True):
    role: TeamRole
    user_id: Id | None = None
    user_email: Name | None = None


class TeamFields(Limits, kw_only=True):
    team_alias: Name | None = None
    organization_id: Id | None = None
    models: Names | None = None
    metadata: dict[str, Any] | None = None
    tags: Names | None = None
    blocked: bool | None = None
    # Per-model budgets every member gets (LiteLLM's team_member_model_max_budget); a
    # member's own (`/team/member_update` `model_max_budget`) override them entry by entry.
    team_member_model_max_budget: ModelBudgets | None = None

    def check(self) -> None:
        super().check()
        check_model_budgets(self.team_member_model_max_budget, "team_member_model_max_budget")

    litellm_unimplemented: ClassVar[frozenset[str]] = UNIMPLEMENTED_LIMITS | frozenset(
        """admins members team_member_permissions router_settings access_group_ids
        default_team_member_models model_aliases guardrails policies prompts
        allowed_passthrough_routes secret_manager_settings rpm_limit_type tpm_limit_type
        team_member_budget team_member_rpm_limit team_member_tpm_limit team_member_key_duration
        team_member_budget_duration allowed_vector_store_indexes
        enforced_batch_output_expires_after enforced_file_expires_after""".split()
    )


class NewTeamRequest(TeamFields, kw_only=True):
    team_id: Id | None = None
    members_with_roles: Annotated[list[Member], Meta(max_length=1000)] = []


class UpdateTeamRequest(TeamFields, kw_only=True):
    team_id: Id


class DeleteTeamRequest(Body, kw_only=True):
    team_ids: Ids


class TeamMemberAddRequest(Body, kw_only=True):
    team_id: Id
    member: Member | Annotated[list[Member], Meta(min_length=1, max_length=1000)]
    max_budget_in_team: Usd | None = None


class TeamMemberDeleteRequest(Body, kw_only=True):
    team_id: Id
    user_id: Id | None = None
    user_email: Name | None = None


class TeamMemberUpdateRequest(Body, kw_only=True):
    team_id: Id
    user_id: Id | None = None
    user_email: Name | None = None
    role: TeamRole | None = None
    max_budget_in_team: Usd | None = None
    # This member's own per-model budgets in the team, over the team's defaults
    # (team_member_model_max_budget); kept in the member's budget row.
    model_max_budget: ModelBudgets | None = None

    def check(self) -> None:
        check_model_budgets(self.model_max_budget, "model_max_budget")


class OrganizationFields(Limits, kw_only=True):
    organization_alias: Name | None = None
    models: Names | None = None
    budget_id: Id | None = None
    metadata: dict[str, Any] | None = None


class NewOrganizationRequest(OrganizationFields, kw_only=True):
    organization_id: Id | None = None


class UpdateOrganizationRequest(OrganizationFields, kw_only=True):
    organization_id: Id


class DeleteOrganizationRequest(Body, kw_only=True):
    organization_ids: Ids


class CustomerFields(Limits, kw_only=True):
    alias: Name | None = None
    blocked: bool | None = None
    budget_id: Id | None = None
    allowed_model_region: Literal["eu", "us"] | None = None
    default_model: Name | None = None
    spend: Usd | None = None


class NewCustomerRequest(CustomerFields, kw_only=True):
    user_id: Id


class UpdateCustomerRequest(CustomerFields, kw_only=True):
    user_id: Id


class DeleteCustomerRequest(Body, kw_only=True):
    user_ids: Ids


class BudgetNewRequest(Limits, kw_only=True):
    budget_id: Id | None = None
    budget_reset_at: datetime | None = None


class BudgetUpdateRequest(Limits, kw_only=True):
    budget_id: Id
    budget_reset_at: datetime | None = None


class BudgetRequest(Body, kw_only=True):
    budgets: Ids


class BudgetDeleteRequest(Body, kw_only=True):
    id: Id
