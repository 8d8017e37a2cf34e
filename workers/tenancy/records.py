"""What the request path knows of a key, team, user, team member, organization, customer or
budget: an `Entity`, built from its database row and mirrored in Redis as msgpack.

Limits left unset on an entity come from its budget row (LiteLLM's `budget_id`), so a
change to a shared budget reaches every entity using it without rewriting them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec

KEY: Final = "key"
TEAM: Final = "team"
USER: Final = "user"
MEMBER: Final = "team_member"
ORG: Final = "organization"
CUSTOMER: Final = "customer"
BUDGET: Final = "budget"
KINDS: Final = (KEY, TEAM, USER, MEMBER, ORG, CUSTOMER, BUDGET)


class Limits(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None
    max_budget: float | None = None
    soft_budget: float | None = None
    budget_duration: str | None = None
    # The end of the current budget period (unix ms), as the database has it.
    reset_at_ms: int | None = None
    # Per model group: its own budget (LiteLLM's model_max_budget), in USD.
    model_max_budget: dict[str, float] = {}

    def under(self, budget: Limits | None) -> Limits:
        """These limits, with what is unset taken from `budget` (the entity's budget row)."""
        if budget is None:
            return self
        mine = msgspec.structs.asdict(self)
        theirs = msgspec.structs.asdict(budget)
        merged = {k: v if v not in (None, {}) else theirs[k] for k, v in mine.items()}
        return Limits(**merged)

    @property
    def is_empty(self) -> bool:
        return self == NO_LIMITS

    @property
    def limits_anything(self) -> bool:
        """Whether a request must be counted against these: a rate, a parallel limit or a
        budget (hard or soft). Spend alone is the ledger's to record."""
        return (
            self.rpm is not None
            or self.tpm is not None
            or self.parallel is not None
            or self.max_budget is not None
            or self.soft_budget is not None
        )


NO_LIMITS: Final = Limits()


class Entity(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    kind: str
    id: str
    limits: Limits = NO_LIMITS
    budget_id: str | None = None
    # The spend the database holds: it seeds a budget counter Redis lost (a cold mirror).
    spend: float = 0.0
    blocked: bool = False
    models: tuple[str, ...] = ()
    # A key's owners and description.
    alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    expires_ms: int | None = None
    tags: tuple[str, ...] = ()
    role: str | None = None
    # A key's guardrails (its metadata.guardrails, LiteLLM's per-key guardrails): every
    # request with it runs them (issue #19).
    guardrails: tuple[str, ...] = ()


class Principal(msgspec.Struct, frozen=True):
    """A database key as the request path sees it: the key and the owners it counts
    against (team, user, team member, organization), each with its budget row's limits
    merged in."""

    token: str
    key: Entity
    owners: tuple[Entity, ...] = ()

    def owner(self, kind: str) -> Entity | None:
        return next((entity for entity in self.owners if entity.kind == kind), None)


encode = msgspec.msgpack.Encoder().encode
decode = msgspec.msgpack.Decoder(Entity).decode


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _model_budgets(raw: Any) -> dict[str, float]:
    """LiteLLM's `model_max_budget`: `{"gpt-4o": 10}` or `{"gpt-4o": {"budget_limit": 10}}`."""
    budgets: dict[str, float] = {}
    for model, value in (raw or {}).items():
        limit = value.get("budget_limit") if isinstance(value, dict) else value
        if limit is not None:
            budgets[str(model)] = float(limit)
    return budgets


def limits_of(row: dict[str, Any]) -> Limits:
    return Limits(
        rpm=row.get("rpm_limit"),
        tpm=row.get("tpm_limit"),
        parallel=row.get("max_parallel_requests"),
        max_budget=row.get("max_budget"),
        soft_budget=row.get("soft_budget"),
        budget_duration=row.get("budget_duration"),
        reset_at_ms=_ms(row.get("budget_reset_at")),
        model_max_budget=_model_budgets(row.get("model_max_budget")),
    )


def entity_of(kind: str, object_id: str, row: dict[str, Any]) -> Entity:
    """The entity of a database row (`workers/db/tables.py`'s columns)."""
    return Entity(
        kind=kind,
        id=object_id,
        limits=limits_of(row),
        budget_id=row.get("budget_id"),
        spend=float(row.get("spend") or 0.0),
        blocked=bool(row.get("blocked") or False),
        models=tuple(row.get("models") or ()),
        alias=row.get("key_alias") or row.get("team_alias"),
        user_id=row.get("user_id") if kind != USER else None,
        team_id=row.get("team_id") if kind != TEAM else None,
        organization_id=row.get("organization_id") if kind != ORG else None,
        expires_ms=_ms(row.get("expires")),
        tags=tuple(row.get("tags") or ()),
        role=row.get("user_role") or row.get("role"),
        guardrails=_guardrails(row) if kind == KEY else (),
    )


def _guardrails(row: dict[str, Any]) -> tuple[str, ...]:
    metadata = row.get("metadata")
    names = metadata.get("guardrails") if isinstance(metadata, dict) else None
    if not isinstance(names, list):
        return ()
    return tuple(name for name in names if isinstance(name, str))
