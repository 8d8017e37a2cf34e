"""Virtual keys: /key/generate, /key/update, /key/info, /key/list, /key/delete,
/key/regenerate, /key/block, /key/unblock, in LiteLLM's shapes.

A key is returned once, by /key/generate (and /key/regenerate, for the new one); the database
holds only its hash, which /key/list shows as `token` and every endpoint accepts instead of
the key. Who may do what is `access.Principal`'s.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from broker.management import schemas
from broker.management.access import Principal, denied
from broker.management.http import Call, endpoint, found, remaining
from broker.management.values import created, given, updated, with_reset
from workers import durations
from workers.db import keys, teams, users
from workers.db.rows import Row, now
from workers.errors import InvalidRequest

# The most `/key/list?min_budget_percent=` takes: ten times over budget.
MAX_BUDGET_PERCENT = 1000
OWNED_FIELDS = (
    "key_alias",
    "models",
    "team_id",
    "user_id",
    "organization_id",
    "budget_id",
    "metadata",
    "tags",
    "allowed_routes",
    "blocked",
    "spend",
    "max_budget",
    "soft_budget",
    "budget_duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "model_max_budget",
)


def key_view(row: Row) -> dict[str, Any]:
    return {**row, "remaining_budget": remaining(row)}


def generated(key: str, row: Row) -> dict[str, Any]:
    """LiteLLM's GenerateKeyResponse: the key, once, beside the stored row."""
    return {**row, "key": key, "token_id": row["token"]}


async def _check_team(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """A team key's models must be among the team's, and it joins the team's organization."""
    if values.get("team_id") is None:
        return
    team = await teams.get(conn, values["team_id"])
    if team is None:
        raise InvalidRequest(f"no team `{values['team_id']}`", param="team_id")
    outside = set(values.get("models") or ()) - set(team["models"])
    if team["models"] and outside:
        raise InvalidRequest(
            f"team `{team['team_id']}` may not call {', '.join(sorted(outside))}; its models "
            f"are {', '.join(team['models'])}",
            param="models",
        )
    if team["organization_id"] and values.get("organization_id") is None:
        values["organization_id"] = team["organization_id"]


async def _check_alias(conn: AsyncConnection, alias: str | None, token: str | None) -> None:
    if alias is None:
        return
    holder = await keys.get_by_alias(conn, alias)
    if holder is not None and holder["token"] != token:
        raise InvalidRequest(
            f"the key alias `{alias}` is taken; aliases are unique", param="key_alias"
        )


def _check_ownership(
    principal: Principal, values: dict[str, Any], what: str, changed: dict[str, Any]
) -> None:
    """Non-admins make and move keys only into what they own or administer."""
    if principal.is_admin:
        return
    team_id, user_id = values.get("team_id"), values.get("user_id")
    if "spend" in changed:
        raise denied("only a proxy admin may set a key's spend")
    if team_id is not None and team_id in principal.admin_of:
        return  # a team admin: any key of its team
    if user_id != principal.user_id:
        raise denied(f"you may {what} only keys of your own user")
    if team_id is not None and team_id not in principal.member_of:
        raise denied(f"you are not a member of team `{team_id}`")


async def _ensure_user(conn: AsyncConnection, call: Call, user_id: str | None) -> None:
    """LiteLLM creates the user a new key names when it does not exist yet."""
    if user_id is None or await users.get(conn, user_id) is not None:
        return
    row = await users.insert(
        conn, {"user_id": user_id, "user_role": users.INTERNAL_USER, **created(call.principal)}
    )
    await call.audit(conn, "create", "user", user_id, None, row)


def _lifetimes(values: dict[str, Any], duration: str | None) -> dict[str, Any]:
    moment = now()
    if duration is not None:
        values["expires"] = durations.after(moment, duration)
    return with_reset(values, moment)


def _with_guardrails(
    call: Call, body: schemas.KeyFields, values: dict[str, Any], before: Row | None = None
) -> dict[str, Any]:
    """LiteLLM's per-key guardrails, `guardrails: [...]` or `metadata.guardrails`, kept in
    the key's metadata as LiteLLM keeps them (the Redis mirror carries them to the request
    path); each must be a guardrail of the config."""
    metadata = values.get("metadata")
    names: Any = body.guardrails
    if names is None and isinstance(metadata, dict):
        names = metadata.get("guardrails")
    if names is None:
        return values
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidRequest("`guardrails` must be a list of guardrail names", param="guardrails")
    known = call.management.guardrail_names
    unknown = sorted(set(names) - known)
    if unknown:
        raise InvalidRequest(
            f"unknown guardrails {unknown}: the config's guardrails are "
            f"{sorted(known) if known else 'none'}",
            param="guardrails",
            code="unknown_guardrail",
        )
    base = metadata if metadata is not None else (before or {}).get("metadata") or {}
    return {**values, "metadata": {**base, "guardrails": list(dict.fromkeys(names))}}


async def create_key(conn: AsyncConnection, call: Call, body: schemas.KeyFields, key: str) -> Row:
    values = _with_guardrails(call, body, given(body, OWNED_FIELDS))
    if not call.principal.is_admin and body.user_id is None and body.team_id is None:
        values["user_id"] = call.principal.user_id  # an internal user's key is its own
    _check_ownership(call.principal, values, "create", values)
    await _check_team(conn, values)
    await _check_alias(conn, values.get("key_alias"), None)
    token = keys.hash_token(key)
    if await keys.get(conn, token) is not None:
        raise InvalidRequest("that key already exists; choose another", param="key")
    await _ensure_user(conn, call, values.get("user_id"))
    values = _lifetimes(values, body.duration)
    row = await keys.insert(
        conn,
        {"token": token, "key_name": keys.display_name(key), **values, **created(call.principal)},
    )
    await call.audit(conn, "create", "key", token, None, row)
    return row


@endpoint
async def generate(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.GenerateKeyRequest)
    call.principal.require_writer("create keys")
    key = body.key or keys.new_key()
    async with call.transaction() as conn:
        row = await create_key(conn, call, body, key)
    return generated(key, row)


async def _managed(conn: AsyncConnection, call: Call, name: str) -> Row:
    row = found(await keys.find(conn, name), "key", _shown(name))
    if not call.principal.may_manage_key(row):
        raise denied(f"you may not manage the key `{row['key_alias'] or row['key_name']}`")
    return row


def _shown(name: str) -> str:
    """A key named in a message is shown abbreviated, never whole."""
    return keys.display_name(name) if name.startswith(keys.KEY_PREFIX) else name


@endpoint
async def update(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.UpdateKeyRequest)
    async with call.transaction() as conn:
        before = await _managed(conn, call, body.key)
        values = _with_guardrails(call, body, given(body, OWNED_FIELDS), before)
        _check_ownership(call.principal, {**before, **values}, "update", values)
        await _check_team(conn, {**values, "models": values.get("models", before["models"])})
        await _check_alias(conn, values.get("key_alias"), before["token"])
        values = _lifetimes(values, body.duration)
        after = await keys.update(conn, before["token"], {**values, **updated(call.principal)})
        await call.audit(conn, "update", "key", before["token"], before, after)
    assert after is not None
    return {**after, "key": body.key}


@endpoint
async def info(call: Call) -> dict[str, Any]:
    name = call.query("key")
    async with call.transaction() as conn:
        if name is None:  # LiteLLM: without `key`, the calling key itself
            if call.principal.token is None:
                raise InvalidRequest("`key` is required with the master key", param="key")
            row = await keys.get(conn, call.principal.token)
        else:
            row = await keys.find(conn, name)
        row = found(row, "key", _shown(name or ""))
    if not call.principal.may_read_key(row):
        raise denied("you may not read this key")
    return {"key": name or row["token"], "info": key_view(row)}


@endpoint
async def list_keys(call: Call) -> dict[str, Any]:
    principal = call.principal
    page, size = call.query_int("page", 1, high=10**6), call.query_int("size", 10)
    user_id, team_id = call.query("user_id"), call.query("team_id")
    if not principal.reads_all:
        if team_id is not None and team_id not in principal.admin_of:
            raise denied(f"you do not administer team `{team_id}`")
        if team_id is None and user_id not in (None, principal.user_id):
            raise denied("you may list only your own keys")
        user_id = principal.user_id if team_id is None else user_id
    # Issue #21: keys at or over this share of their budget, the most used first.
    percent = call.query_int("min_budget_percent", -1, low=0, high=MAX_BUDGET_PERCENT)
    near = percent if percent >= 0 else None
    named = call.query("key_hash")
    token = None if named is None else keys.token_of(named)
    if not principal.reads_all and principal.user_id is None and team_id is None:
        if token not in (None, principal.token):
            raise denied("a key without a user may list only itself")
        token = principal.token  # a key without a user: itself
    statement = keys.filtered(
        user_id=user_id,
        team_ids=None if team_id is None else [team_id],
        organization_id=call.query("organization_id"),
        key_alias=call.query("key_alias"),
        token=token,
        min_budget_percent=near,
    )
    async with call.transaction() as conn:
        rows, total = await keys.list_page(
            conn, statement, page=page, size=size, by_budget_used=near is not None
        )
    full = call.query_bool("return_full_object")
    return {
        "keys": [key_view(row) if full else row["token"] for row in rows],
        "total_count": total,
        "current_page": page,
        "total_pages": max(1, math.ceil(total / size)),
    }


@endpoint
async def delete(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.KeyRequest)
    names = [*(body.keys or ()), *(body.key_aliases or ())]
    if not names:
        raise InvalidRequest("give `keys` or `key_aliases`", param="keys")
    async with call.transaction() as conn:
        doomed = {}
        for name in names:
            row = await _managed(conn, call, name)
            doomed[row["token"]] = row
        for row in await keys.delete(conn, doomed):
            await call.audit(conn, "delete", "key", row["token"], row, None)
    return {"deleted_keys": names}


async def _set_blocked(call: Call, blocked: bool) -> dict[str, Any]:
    body = await call.body(schemas.BlockKeyRequest)
    async with call.transaction() as conn:
        before = await _managed(conn, call, body.key)
        call.principal.require_writer("block keys")
        after = await keys.update(
            conn, before["token"], {"blocked": blocked, **updated(call.principal)}
        )
        action = "block" if blocked else "unblock"
        await call.audit(conn, action, "key", before["token"], before, after)
    assert after is not None
    return after


@endpoint
async def block(call: Call) -> dict[str, Any]:
    return await _set_blocked(call, True)


@endpoint
async def unblock(call: Call) -> dict[str, Any]:
    return await _set_blocked(call, False)


@endpoint
async def regenerate(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.RegenerateKeyRequest)
    name = call.request.match_info.get("key") or body.key
    if name is None:
        raise InvalidRequest("`key` is required", param="key")
    new_key = body.new_key or keys.new_key()
    async with call.transaction() as conn:
        before = await _managed(conn, call, name)
        call.principal.require_writer("regenerate keys")
        changed = _with_guardrails(call, body, given(body, OWNED_FIELDS), before)
        values = {**before, **changed}
        _check_ownership(call.principal, values, "regenerate", changed)
        token = keys.hash_token(new_key)
        if await keys.get(conn, token) is not None:
            raise InvalidRequest("that key already exists; choose another", param="new_key")
        await keys.delete(conn, [before["token"]])
        values = _lifetimes(values, body.duration)
        values.update(token=token, key_name=keys.display_name(new_key), **updated(call.principal))
        after = await keys.insert(conn, values)
        await call.audit(conn, "regenerate", "key", before["token"], before, None)
        await call.audit(conn, "create", "key", token, None, after)
    return generated(new_key, after)
