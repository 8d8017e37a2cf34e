"""End users, LiteLLM's customers (the `user` field of a request): /customer/new, /info,
/update, /delete, /list, in LiteLLM's shapes. Proxy admins change them; viewers read them.
Limits live in a budget row: `budget_id`, or limits given inline (not both)."""

from __future__ import annotations

from typing import Any

from broker.management import schemas
from broker.management.http import Call, endpoint, found, required
from broker.management.values import (
    budget_for,
    check_budget_or_limits,
    created,
    given,
    updated,
    with_budget,
)
from workers.db import customers
from workers.errors import InvalidRequest

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
        await check_budget_or_limits(conn, body)
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
        await check_budget_or_limits(conn, body)
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
