"""Internal users: /user/new, /user/info, /user/update, /user/delete, /user/list, in
LiteLLM's shapes. As in LiteLLM, /user/new also creates a key for the user unless
`auto_create_key` is false; the key is in the response, once."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from broker.management import schemas
from broker.management.access import denied
from broker.management.http import Call, endpoint, found, remaining, required
from broker.management.keys import create_key, key_view
from broker.management.teams import join_team
from broker.management.values import created, given, new_id, updated, with_reset
from workers.db import keys, teams, users
from workers.db.rows import Row, now
from workers.errors import InvalidRequest

USER_FIELDS = (
    "user_email",
    "user_alias",
    "user_role",
    "models",
    "metadata",
    "organization_id",
    "spend",
    "max_budget",
    "soft_budget",
    "budget_duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "model_max_budget",
)


def user_view(row: Row) -> dict[str, Any]:
    return {**row, "remaining_budget": remaining(row)}


@endpoint
async def new(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.NewUserRequest)
    call.principal.require_admin("create users")
    user_id = body.user_id or new_id()
    values = with_reset(given(body, USER_FIELDS), now())
    values.setdefault("user_role", users.INTERNAL_USER)
    key = keys.new_key()
    async with call.transaction() as conn:
        if await users.get(conn, user_id) is not None:
            raise InvalidRequest(f"the user `{user_id}` exists", param="user_id", code="conflict")
        row = await users.insert(conn, {"user_id": user_id, **values, **created(call.principal)})
        await call.audit(conn, "create", "user", user_id, None, row)
        team_ids = []
        for team in body.teams or ():
            membership = team if isinstance(team, schemas.NewUserTeam) else None
            team_id = team if isinstance(team, str) else team.team_id
            await join_team(
                conn,
                call,
                team_id,
                user_id,
                membership.user_role if membership else teams.MEMBER,
                membership.max_budget_in_team if membership else None,
            )
            team_ids.append(team_id)
        key_row = None
        if body.auto_create_key:
            key_body = schemas.KeyFields(
                user_id=user_id,
                models=body.models,
                key_alias=body.key_alias,
                duration=body.duration,
            )
            key_row = await create_key(conn, call, key_body, key)
    response = {**row, "teams": team_ids, "key": None, "key_name": None, "expires": None}
    if key_row is not None:
        response.update(
            key=key,
            key_name=key_row["key_name"],
            expires=key_row["expires"],
            token_id=key_row["token"],
        )
    return response


async def _named(conn: AsyncConnection, user_id: str | None, email: str | None) -> Row:
    if user_id is not None:
        return found(await users.get(conn, user_id, for_update=True), "user", user_id)
    if email is not None:
        return found(await users.get_by_email(conn, email), "user", email)
    raise InvalidRequest("give `user_id` or `user_email`", param="user_id")


@endpoint
async def info(call: Call) -> dict[str, Any]:
    user_id = call.query("user_id") or call.principal.user_id
    user_id = required(user_id, "user_id")
    if not call.principal.may_read_user(user_id):
        raise denied("you may read only your own user")
    async with call.transaction() as conn:
        row = found(await users.get(conn, user_id), "user", user_id)
        owned = await keys.owned_by(conn, user_id=user_id)
        memberships = await teams.memberships_of(conn, user_id)
        member_teams = [await teams.get(conn, m["team_id"]) for m in memberships]
    return {
        "user_id": user_id,
        "user_info": {**user_view(row), "teams": [m["team_id"] for m in memberships]},
        "keys": [key_view(key) for key in owned],
        "teams": [team for team in member_teams if team is not None],
    }


@endpoint
async def update(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.UpdateUserRequest)
    call.principal.require_admin("update users")
    async with call.transaction() as conn:
        before = await _named(conn, body.user_id, body.user_email)
        values = with_reset(given(body, USER_FIELDS), now())
        after = await users.update(conn, before["user_id"], {**values, **updated(call.principal)})
        await call.audit(conn, "update", "user", before["user_id"], before, after)
    assert after is not None
    return user_view(after)


@endpoint
async def delete(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.DeleteUserRequest)
    call.principal.require_admin("delete users")
    async with call.transaction() as conn:
        for user_id in body.user_ids:
            found(await users.get(conn, user_id), "user", user_id)
        # As in LiteLLM, a user's keys go with it; its memberships follow by cascade.
        for key in await keys.delete_owned(conn, user_ids=body.user_ids):
            await call.audit(conn, "delete", "key", key["token"], key, None)
        for row in await users.delete(conn, body.user_ids):
            await call.audit(conn, "delete", "user", row["user_id"], row, None)
    return {"deleted_users": body.user_ids}


@endpoint
async def list_users(call: Call) -> dict[str, Any]:
    call.principal.require_reader("list users")
    page, size = call.query_int("page", 1, high=10**6), call.query_int("page_size", 25)
    role = call.query("role")
    async with call.transaction() as conn:
        rows, total = await users.list_page(conn, role=role, page=page, size=size)
    return {
        "users": [user_view(row) for row in rows],
        "total": total,
        "page": page,
        "page_size": size,
        "total_pages": max(1, math.ceil(total / size)),
    }
