"""Teams and their members: /team/new, /team/info, /team/update, /team/delete, /team/list,
/team/member_add, /team/member_delete, /team/member_update, in LiteLLM's shapes.

Members live in `team_memberships`; `members_with_roles` is rendered from it. A member named
by an email no user has, or by an id no user has, becomes a new internal user (LiteLLM does
the same). A member's budget inside the team (`max_budget_in_team`) is a budget row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from broker.management import schemas
from broker.management.access import denied
from broker.management.http import Call, endpoint, found, remaining, required
from broker.management.values import created, given, new_id, updated, with_reset
from workers.db import budgets, keys, organizations, teams, users
from workers.db.rows import Row, now
from workers.errors import InvalidRequest

TEAM_FIELDS = (
    "team_alias",
    "organization_id",
    "models",
    "metadata",
    "tags",
    "blocked",
    "max_budget",
    "soft_budget",
    "budget_duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "model_max_budget",
    "team_member_model_max_budget",
)
# What a team admin may change on its own team; the rest (budget, limits, models,
# organization, blocked) only a proxy admin, or a team could lift its own cap.
TEAM_ADMIN_FIELDS = frozenset({"team_alias", "metadata", "tags"})


async def team_view(conn: AsyncConnection, row: Row) -> dict[str, Any]:
    members = await teams.members(conn, row["team_id"])
    roles = [
        {"role": m["role"], "user_id": m["user_id"], "user_email": m["user_email"]} for m in members
    ]
    return {**row, "members_with_roles": roles, "remaining_budget": remaining(row)}


async def _member_user(conn: AsyncConnection, call: Call, member: schemas.Member) -> str:
    if member.user_id is not None:
        row = await users.get(conn, member.user_id)
    elif member.user_email is not None:
        row = await users.get_by_email(conn, member.user_email)
    else:
        raise InvalidRequest("a member needs `user_id` or `user_email`", param="member")
    if row is not None:
        return str(row["user_id"])
    values = {
        "user_id": member.user_id or new_id(),
        "user_email": member.user_email,
        "user_role": users.INTERNAL_USER,
    }
    row = await users.insert(conn, {**values, **created(call.principal)})
    await call.audit(conn, "create", "user", row["user_id"], None, row)
    return str(row["user_id"])


async def join_team(
    conn: AsyncConnection,
    call: Call,
    team_id: str,
    user_id: str,
    role: str,
    max_budget_in_team: float | None,
) -> Row:
    found(await teams.get(conn, team_id), "team", team_id)
    current = await teams.membership(conn, team_id, user_id)
    budget_id = current["budget_id"] if current else None
    if max_budget_in_team is not None:
        limits = {"max_budget": max_budget_in_team}
        budget_id = await _member_budget(conn, call, budget_id, limits)
    row = await teams.add_member(conn, team_id, user_id, role, budget_id)
    await call.audit(conn, "add", "team_member", f"{team_id}/{user_id}", current, row)
    return row


async def _member_budget(
    conn: AsyncConnection, call: Call, budget_id: str | None, limits: dict[str, Any]
) -> str:
    """The member's budget row in the team, made or updated with `limits` (its
    `max_budget`, its own `model_max_budget`)."""
    before = await budgets.get(conn, budget_id) if budget_id is not None else None
    if budget_id is not None and before is not None:
        after = await budgets.update(conn, budget_id, {**limits, **updated(call.principal)})
        # Its own change (and audit row): the mirror's copy of the row must follow.
        await call.audit(conn, "update", "budget", budget_id, before, after)
        return budget_id
    row = await budgets.insert(conn, {"budget_id": new_id(), **limits, **created(call.principal)})
    return str(row["budget_id"])


async def _check_organization(conn: AsyncConnection, organization_id: str | None) -> None:
    if organization_id is not None and await organizations.get(conn, organization_id) is None:
        raise InvalidRequest(f"no organization `{organization_id}`", param="organization_id")


@endpoint
async def new(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.NewTeamRequest)
    call.principal.require_admin("create teams")
    team_id = body.team_id or new_id()
    values = with_reset(given(body, TEAM_FIELDS), now())
    async with call.transaction() as conn:
        if await teams.get(conn, team_id) is not None:
            raise InvalidRequest(f"the team `{team_id}` exists", param="team_id", code="conflict")
        await _check_organization(conn, body.organization_id)
        row = await teams.insert(conn, {"team_id": team_id, **values, **created(call.principal)})
        await call.audit(conn, "create", "team", team_id, None, row)
        for member in body.members_with_roles:
            user_id = await _member_user(conn, call, member)
            await join_team(conn, call, team_id, user_id, member.role, None)
        return await team_view(conn, row)


@endpoint
async def info(call: Call) -> dict[str, Any]:
    team_id = required(call.query("team_id"), "team_id")
    if not call.principal.may_read_team(team_id):
        raise denied(f"you are not a member of team `{team_id}`")
    async with call.transaction() as conn:
        row = found(await teams.get(conn, team_id), "team", team_id)
        view = await team_view(conn, row)
        team_keys = await keys.owned_by(conn, team_id=team_id)
        memberships = await teams.members(conn, team_id)
    return {
        "team_id": team_id,
        "team_info": view,
        "keys": team_keys,
        "team_memberships": memberships,
    }


@endpoint
async def update(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.UpdateTeamRequest)
    values = given(body, TEAM_FIELDS)
    if not call.principal.is_admin:
        if not call.principal.may_manage_team(body.team_id):
            raise denied(f"you do not administer team `{body.team_id}`")
        beyond = sorted(set(values) - TEAM_ADMIN_FIELDS)
        if beyond:
            raise denied(f"only a proxy admin may change a team's {', '.join(beyond)}")
    async with call.transaction() as conn:
        before = found(await teams.get(conn, body.team_id, for_update=True), "team", body.team_id)
        await _check_organization(conn, body.organization_id)
        values = with_reset(values, now())
        after = await teams.update(conn, body.team_id, {**values, **updated(call.principal)})
        await call.audit(conn, "update", "team", body.team_id, before, after)
        assert after is not None
        return await team_view(conn, after)


@endpoint
async def delete(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.DeleteTeamRequest)
    call.principal.require_admin("delete teams")
    async with call.transaction() as conn:
        for team_id in body.team_ids:
            found(await teams.get(conn, team_id), "team", team_id)
        # As in LiteLLM, a team's keys go with it; its memberships follow by cascade.
        for key in await keys.delete_owned(conn, team_ids=body.team_ids):
            await call.audit(conn, "delete", "key", key["token"], key, None)
        for row in await teams.delete(conn, body.team_ids):
            await call.audit(conn, "delete", "team", row["team_id"], row, None)
    return {"deleted_teams": body.team_ids}


@endpoint
async def list_teams(call: Call) -> list[dict[str, Any]]:
    member_of = None if call.principal.reads_all else call.principal.member_of
    async with call.transaction() as conn:
        rows, _ = await teams.list_page(
            conn,
            organization_id=call.query("organization_id"),
            team_ids=member_of,
            page=call.query_int("page", 1, high=10**6),
            size=call.query_int("size", 1000),
        )
        return [await team_view(conn, row) for row in rows]


def _require_team_admin(call: Call, team_id: str) -> None:
    if not call.principal.may_manage_team(team_id):
        raise denied(f"you do not administer team `{team_id}`")


@endpoint
async def member_add(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.TeamMemberAddRequest)
    _require_team_admin(call, body.team_id)
    members = body.member if isinstance(body.member, list) else [body.member]
    async with call.transaction() as conn:
        team = found(await teams.get(conn, body.team_id), "team", body.team_id)
        added = []
        for member in members:
            user_id = await _member_user(conn, call, member)
            added.append(
                await join_team(
                    conn, call, body.team_id, user_id, member.role, body.max_budget_in_team
                )
            )
        updated_users = [await users.get(conn, row["user_id"]) for row in added]
        view = await team_view(conn, team)
    return {**view, "updated_users": updated_users, "updated_team_memberships": added}


async def _member_id(conn: AsyncConnection, user_id: str | None, email: str | None) -> str:
    if user_id is not None:
        return user_id
    if email is not None:
        return str(found(await users.get_by_email(conn, email), "user", email)["user_id"])
    raise InvalidRequest("give `user_id` or `user_email`", param="user_id")


@endpoint
async def member_delete(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.TeamMemberDeleteRequest)
    _require_team_admin(call, body.team_id)
    async with call.transaction() as conn:
        team = found(await teams.get(conn, body.team_id), "team", body.team_id)
        user_id = await _member_id(conn, body.user_id, body.user_email)
        before = found(await teams.membership(conn, body.team_id, user_id), "member", user_id)
        await teams.remove_member(conn, body.team_id, user_id)
        await call.audit(conn, "remove", "team_member", f"{body.team_id}/{user_id}", before, None)
        return await team_view(conn, team)


@endpoint
async def member_update(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.TeamMemberUpdateRequest)
    _require_team_admin(call, body.team_id)
    async with call.transaction() as conn:
        user_id = await _member_id(conn, body.user_id, body.user_email)
        before = found(await teams.membership(conn, body.team_id, user_id), "member", user_id)
        changes: dict[str, Any] = {}
        if body.role is not None:
            changes["role"] = body.role
        limits: dict[str, Any] = {}
        if body.max_budget_in_team is not None:
            limits["max_budget"] = body.max_budget_in_team
        if body.model_max_budget is not None:
            limits["model_max_budget"] = body.model_max_budget
        if limits:
            changes["budget_id"] = await _member_budget(conn, call, before["budget_id"], limits)
        await teams.update_member(conn, body.team_id, user_id, changes)
        after = await teams.membership(conn, body.team_id, user_id)
        await call.audit(conn, "update", "team_member", f"{body.team_id}/{user_id}", before, after)
        user = await users.get(conn, user_id)
    return {
        "team_id": body.team_id,
        "user_id": user_id,
        "user_email": user["user_email"] if user else None,
        "role": after["role"] if after else None,
        "max_budget_in_team": body.max_budget_in_team,
        "model_max_budget": body.model_max_budget,
    }
