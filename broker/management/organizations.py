"""Organizations: /organization/new, /info, /update (PATCH, or POST), /delete (DELETE, or
POST), /list, in LiteLLM's shapes. Proxy admins change them; viewers read them. Limits given
inline become the organization's budget row (`litellm_budget_table` in answers)."""

from __future__ import annotations

from typing import Any

from broker.management import schemas
from broker.management.http import Call, endpoint, found, required
from broker.management.values import (
    budget_for,
    check_budget_or_limits,
    created,
    given,
    new_id,
    updated,
    with_budget,
)
from workers.db import organizations
from workers.errors import InvalidRequest

ORG_FIELDS = ("organization_alias", "models", "metadata")


@endpoint
async def organization_new(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.NewOrganizationRequest)
    call.principal.require_admin("create organizations")
    org_id = body.organization_id or new_id()
    values = given(body, ORG_FIELDS)
    if "organization_alias" not in values:
        raise InvalidRequest("`organization_alias` is required", param="organization_alias")
    async with call.transaction() as conn:
        if await organizations.get(conn, org_id) is not None:
            raise InvalidRequest(
                f"the organization `{org_id}` exists", code="conflict", param="organization_id"
            )
        await check_budget_or_limits(conn, body)
        budget_id, _ = await budget_for(conn, body, call.principal, body.budget_id)
        row = await organizations.insert(
            conn,
            {
                "organization_id": org_id,
                "budget_id": budget_id,
                **values,
                **created(call.principal),
            },
        )
        await call.audit(conn, "create", "organization", org_id, None, row)
        return await with_budget(conn, row)


@endpoint
async def organization_info(call: Call) -> dict[str, Any]:
    call.principal.require_reader("read organizations")
    org_id = required(call.query("organization_id"), "organization_id")
    async with call.transaction() as conn:
        row = found(await organizations.get(conn, org_id), "organization", org_id)
        return await with_budget(conn, row)


@endpoint
async def organization_update(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.UpdateOrganizationRequest)
    call.principal.require_admin("update organizations")
    org_id = body.organization_id
    async with call.transaction() as conn:
        before = found(
            await organizations.get(conn, org_id, for_update=True), "organization", org_id
        )
        await check_budget_or_limits(conn, body)
        budget_id, _ = await budget_for(
            conn, body, call.principal, body.budget_id or before["budget_id"]
        )
        values = {**given(body, ORG_FIELDS), "budget_id": budget_id, **updated(call.principal)}
        after = await organizations.update(conn, org_id, values)
        await call.audit(conn, "update", "organization", org_id, before, after)
        assert after is not None
        return await with_budget(conn, after)


@endpoint
async def organization_delete(call: Call) -> list[dict[str, Any]]:
    body = await call.body(schemas.DeleteOrganizationRequest)
    call.principal.require_admin("delete organizations")
    async with call.transaction() as conn:
        for org_id in body.organization_ids:
            found(await organizations.get(conn, org_id), "organization", org_id)
        deleted = await organizations.delete(conn, body.organization_ids)
        for row in deleted:
            await call.audit(conn, "delete", "organization", row["organization_id"], row, None)
    return deleted


@endpoint
async def organization_list(call: Call) -> list[dict[str, Any]]:
    call.principal.require_reader("list organizations")
    async with call.transaction() as conn:
        return [await with_budget(conn, row) for row in await organizations.list_all(conn)]
