"""Organizations, end users (LiteLLM's customers) and budgets: /organization/*,
/customer/*, /budget/*, in LiteLLM's shapes. Proxy admins change them; viewers read them.
Organizations and end users keep their limits in a budget row (LiteLLM's
`litellm_budget_table`), made from limits given inline."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from broker.management import schemas
from broker.management.http import Call, endpoint, found, required
from broker.management.values import budget_for, created, given, new_id, updated, with_reset
from workers.db import budgets, customers, organizations
from workers.db.rows import Row, now
from workers.errors import InvalidRequest

LIMITS = (
    "max_budget",
    "soft_budget",
    "budget_duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "model_max_budget",
)


async def with_budget(conn: AsyncConnection, row: Row) -> dict[str, Any]:
    budget = await budgets.get(conn, row["budget_id"]) if row.get("budget_id") else None
    return {**row, "litellm_budget_table": budget}


async def _check_budget(conn: AsyncConnection, body: Any) -> None:
    if body.budget_id is None:
        return
    if given(body, LIMITS):
        raise InvalidRequest("set either `budget_id` or the limits, not both", param="budget_id")
    found(await budgets.get(conn, body.budget_id), "budget", body.budget_id)


# ---------------------------------------------------------------------------- organizations

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
        await _check_budget(conn, body)
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
        await _check_budget(conn, body)
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


# ---------------------------------------------------------------------------- customers

CUSTOMER_FIELDS = ("alias", "blocked", "allowed_model_region", "default_model", "spend")


@endpoint
async def customer_new(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.NewCustomerRequest)
    call.principal.require_admin("create customers")
    async with call.transaction() as conn:
        if await customers.get(conn, body.user_id) is not None:
            raise InvalidRequest(
                f"the customer `{body.user_id}` exists", code="conflict", param="user_id"
            )
        await _check_budget(conn, body)
        budget_id, _ = await budget_for(conn, body, call.principal, body.budget_id)
        values = {"blocked": False, **given(body, CUSTOMER_FIELDS)}
        row = await customers.insert(
            conn,
            {"user_id": body.user_id, "budget_id": budget_id, **values, **created(call.principal)},
        )
        await call.audit(conn, "create", "customer", body.user_id, None, row)
        return await with_budget(conn, row)


@endpoint
async def customer_info(call: Call) -> dict[str, Any]:
    call.principal.require_reader("read customers")
    user_id = required(call.query("end_user_id"), "end_user_id")
    async with call.transaction() as conn:
        row = found(await customers.get(conn, user_id), "customer", user_id)
        return await with_budget(conn, row)


@endpoint
async def customer_update(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.UpdateCustomerRequest)
    call.principal.require_admin("update customers")
    async with call.transaction() as conn:
        before = found(
            await customers.get(conn, body.user_id, for_update=True), "customer", body.user_id
        )
        await _check_budget(conn, body)
        budget_id, _ = await budget_for(
            conn, body, call.principal, body.budget_id or before["budget_id"]
        )
        values = {**given(body, CUSTOMER_FIELDS), "budget_id": budget_id, **updated(call.principal)}
        after = await customers.update(conn, body.user_id, values)
        await call.audit(conn, "update", "customer", body.user_id, before, after)
        assert after is not None
        return await with_budget(conn, after)


@endpoint
async def customer_delete(call: Call) -> dict[str, Any]:
    body = await call.body(schemas.DeleteCustomerRequest)
    call.principal.require_admin("delete customers")
    async with call.transaction() as conn:
        for user_id in body.user_ids:
            found(await customers.get(conn, user_id), "customer", user_id)
        for row in await customers.delete(conn, body.user_ids):
            await call.audit(conn, "delete", "customer", row["user_id"], row, None)
    return {"deleted_customers": body.user_ids}


@endpoint
async def customer_list(call: Call) -> list[dict[str, Any]]:
    call.principal.require_reader("list customers")
    async with call.transaction() as conn:
        return [await with_budget(conn, row) for row in await customers.list_all(conn)]


# ---------------------------------------------------------------------------- budgets

BUDGET_FIELDS = (*LIMITS, "budget_reset_at")


@endpoint
async def budget_new(call: Call) -> Row:
    body = await call.body(schemas.BudgetNewRequest)
    call.principal.require_admin("create budgets")
    budget_id = body.budget_id or new_id()
    values = with_reset(given(body, BUDGET_FIELDS), body.budget_reset_at or now())
    if body.budget_reset_at is not None:
        values["budget_reset_at"] = body.budget_reset_at
    async with call.transaction() as conn:
        if await budgets.get(conn, budget_id) is not None:
            raise InvalidRequest(
                f"the budget `{budget_id}` exists", code="conflict", param="budget_id"
            )
        row = await budgets.insert(
            conn, {"budget_id": budget_id, **values, **created(call.principal)}
        )
        await call.audit(conn, "create", "budget", budget_id, None, row)
    return row


@endpoint
async def budget_info(call: Call) -> list[Row]:
    body = await call.body(schemas.BudgetRequest)
    call.principal.require_reader("read budgets")
    async with call.transaction() as conn:
        return await budgets.get_many(conn, body.budgets)


@endpoint
async def budget_update(call: Call) -> Row:
    body = await call.body(schemas.BudgetUpdateRequest)
    call.principal.require_admin("update budgets")
    async with call.transaction() as conn:
        before = found(
            await budgets.get(conn, body.budget_id, for_update=True), "budget", body.budget_id
        )
        values = with_reset(given(body, BUDGET_FIELDS), now())
        if body.budget_reset_at is not None:
            values["budget_reset_at"] = body.budget_reset_at
        after = await budgets.update(conn, body.budget_id, {**values, **updated(call.principal)})
        await call.audit(conn, "update", "budget", body.budget_id, before, after)
    assert after is not None
    return after


@endpoint
async def budget_delete(call: Call) -> Row:
    body = await call.body(schemas.BudgetDeleteRequest)
    call.principal.require_admin("delete budgets")
    async with call.transaction() as conn:
        found(await budgets.get(conn, body.id), "budget", body.id)
        (row,) = await budgets.delete(conn, [body.id])
        await call.audit(conn, "delete", "budget", body.id, row, None)
    return row


@endpoint
async def budget_list(call: Call) -> list[Row]:
    call.principal.require_reader("list budgets")
    async with call.transaction() as conn:
        return await budgets.list_all(conn)
