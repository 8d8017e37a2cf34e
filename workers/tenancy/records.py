"""What the request path knows of a key, team, user, team member, organization, customer or
budget: an `Entity`, built from its database row and mirrored in Redis as msgpack.

Limits left unset on an entity come from its budget row (LiteLLM's `budget_id`), so a
change to a shared budget reaches every entity using it without rewriting them."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
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
    # Per model group: its own budget (LiteLLM's model_max_budget), in USD, and the
    # period it resets on, for a group whose entry names one.
    model_max_budget: dict[str, float] = {}
    model_budget_duration: dict[str, str] = {}

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

    def model_budget(self, group: str, model: str = "") -> tuple[str, Limits] | None:
        """The entry of this owner's model_max_budget a request on model group `group`
        (naming `model`) counts against, and that entry's limits; None without one
        (`model_entry` says which entry)."""
        budgets = self.model_max_budget
        if not budgets:
            return None
        entry = model_entry(budgets, group, model)
        if entry is None:
            return None
        limits = Limits(
            max_budget=budgets[entry], budget_duration=self.model_budget_duration.get(entry)
        )
        return entry, limits

    def with_model_defaults(self, defaults: Limits) -> Limits:
        """These limits with `defaults`' per-model budgets for the entries they do not name
        themselves (a team's team_member_model_max_budget under a member's own)."""
        if not defaults.model_max_budget:
            return self
        mine = self.model_max_budget
        budgets = {**defaults.model_max_budget, **mine}
        periods = {k: v for k, v in defaults.model_budget_duration.items() if k not in mine}
        periods.update(self.model_budget_duration)
        return msgspec.structs.replace(
            self, model_max_budget=budgets, model_budget_duration=periods
        )


def model_entry(entries: Mapping[str, Any], group: str, model: str = "") -> str | None:
    """Which of an owner's model_max_budget `entries` a request counts against: the entry
    naming its model group, else the one naming the model the request named (they differ
    on a wildcard group such as `openai/*`), else the most specific `*` pattern matching
    either: the one with the most characters besides `*` (`openai/gpt-4o*` before
    `openai/*` before `*`), a tie going to the first in sorted order. One entry at most,
    so a request is counted once per owner, against the entry that says most about it.
    (A wildcard group's own name, `openai/*`, is a pattern like any other.)"""
    if group in entries and "*" not in group:
        return group
    if model and model in entries and "*" not in model:
        return model
    best: str | None = None
    best_chars = -1
    for entry in entries:
        if "*" not in entry:
            continue
        if not (_pattern(entry)(group) or (model and _pattern(entry)(model))):
            continue
        chars = len(entry) - entry.count("*")
        if chars > best_chars or (chars == best_chars and best is not None and entry < best):
            best, best_chars = entry, chars
    return best


@functools.lru_cache(maxsize=1024)
def _pattern(entry: str) -> Any:
    """A `*` pattern's matcher (`*`: any characters, none included; nothing else special)."""
    parts = (".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", entry))
    return re.compile("".join(parts), re.DOTALL).fullmatch


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
    # A team's defaults for each of its members (LiteLLM's team_member_model_max_budget):
    # per-model budgets a member's own entries override one by one.
    member_limits: Limits = NO_LIMITS
    # What the database says was spent on each of this entity's model_max_budget entries
    # (its budget row's and, for a member, its team's defaults included) in the entry's
    # current window: the seed of a per-model counter Redis lost (workers/tenancy/seeds.py).
    model_spend: dict[str, float] = {}


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


def _model_budgets(raw: Any) -> tuple[dict[str, float], dict[str, str]]:
    """LiteLLM's `model_max_budget`: `{"gpt-4o": 10}` or `{"gpt-4o": {"budget_limit": 10,
    "time_period": "1d"}}` (also `max_budget` / `budget_duration`, as LiteLLM's budget
    rows spell them): each group's limit in USD, and the period of those that reset."""
    budgets: dict[str, float] = {}
    periods: dict[str, str] = {}
    for model, value in (raw or {}).items():
        entry = value if isinstance(value, dict) else {"budget_limit": value}
        limit = entry.get("budget_limit", entry.get("max_budget"))
        if limit is None:
            continue
        budgets[str(model)] = float(limit)
        period = entry.get("time_period") or entry.get("budget_duration")
        if period:
            periods[str(model)] = str(period)
    return budgets, periods


def model_limits(raw: Any) -> Limits:
    """Limits holding only per-model budgets (a team's team_member_model_max_budget)."""
    budgets, periods = _model_budgets(raw)
    return Limits(model_max_budget=budgets, model_budget_duration=periods)


def limits_of(row: dict[str, Any]) -> Limits:
    model_budgets, model_periods = _model_budgets(row.get("model_max_budget"))
    return Limits(
        rpm=row.get("rpm_limit"),
        tpm=row.get("tpm_limit"),
        parallel=row.get("max_parallel_requests"),
        max_budget=row.get("max_budget"),
        soft_budget=row.get("soft_budget"),
        budget_duration=row.get("budget_duration"),
        reset_at_ms=_ms(row.get("budget_reset_at")),
        model_max_budget=model_budgets,
        model_budget_duration=model_periods,
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
        member_limits=model_limits(row.get("team_member_model_max_budget"))
        if kind == TEAM
        else NO_LIMITS,
    )


def _guardrails(row: dict[str, Any]) -> tuple[str, ...]:
    metadata = row.get("metadata")
    names = metadata.get("guardrails") if isinstance(metadata, dict) else None
    if not isinstance(names, list):
        return ()
    return tuple(name for name in names if isinstance(name, str))
