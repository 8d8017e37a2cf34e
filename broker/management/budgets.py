"""Shared budgets: /budget/new, /info, /update, /delete, /list, in LiteLLM's shapes. Proxy
admins change them; viewers read them."""

from __future__ import annotations

from broker.management import schemas
from broker.management.http import Call, endpoint, found
from broker.management.values import (
    LIMIT_FIELDS,
    created,
    given,
    new_id,
    updated,
    with_reset,
)
from workers.db import budgets
from workers.db.rows import Row, now
from workers.errors import InvalidRequest

BUDGET_FIELDS = (*LIMIT_FIELDS, "budget_reset_at")


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
