"""The management API (issue #17): LiteLLM's key, user, team, organization, customer,
budget and spend endpoints over the system of record (`workers/db`), with roles
(`access.py`) and an audit row for every change. `ROUTES` is the one list: it registers the
routes and describes them in the OpenAPI document (`openapi.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from broker.management import (
    budgets,
    customers,
    keys,
    organizations,
    schemas,
    spend,
    teams,
    users,
)
from broker.management.bodies import Body
from broker.management.state import MANAGEMENT, Change, ChangeListener, management_ctx

__all__ = [
    "MANAGEMENT",
    "ROUTES",
    "Change",
    "ChangeListener",
    "Route",
    "add_management_routes",
    "management_ctx",
]


class Route(msgspec.Struct, frozen=True):
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    body: type[Body] | None = None
    query: tuple[str, ...] = ()


def _crud(
    family: str,
    handlers: tuple[Callable[..., Awaitable[web.StreamResponse]], ...],
    bodies: tuple[type[Body], type[Body], type[Body]],
    id_param: str,
    *,
    update: tuple[str, ...] = ("POST",),
    delete: tuple[str, ...] = ("POST",),
    list_query: tuple[str, ...] = (),
) -> list[Route]:
    new, info, change, remove, listing = handlers
    new_body, update_body, delete_body = bodies
    return [
        Route("POST", f"/{family}/new", new, f"Create a {family}", new_body),
        Route("GET", f"/{family}/info", info, f"A {family}", query=(id_param,)),
        *(Route(m, f"/{family}/update", change, f"Update a {family}", update_body) for m in update),
        *(Route(m, f"/{family}/delete", remove, f"Delete {family}s", delete_body) for m in delete),
        Route("GET", f"/{family}/list", listing, f"List {family}s", query=list_query),
    ]


ROUTES: list[Route] = [
    Route(
        "POST",
        "/key/generate",
        keys.generate,
        "Create a key (returned once)",
        schemas.GenerateKeyRequest,
    ),
    Route("POST", "/key/update", keys.update, "Update a key", schemas.UpdateKeyRequest),
    Route("GET", "/key/info", keys.info, "A key, its spend and remaining budget", query=("key",)),
    Route(
        "GET",
        "/key/list",
        keys.list_keys,
        "List keys",
        query=(
            "page",
            "size",
            "user_id",
            "team_id",
            "organization_id",
            "key_alias",
            "key_hash",
            "return_full_object",
            "min_budget_percent",
        ),
    ),
    Route("POST", "/key/delete", keys.delete, "Delete keys", schemas.KeyRequest),
    Route(
        "POST",
        "/key/regenerate",
        keys.regenerate,
        "Replace a key with a new one",
        schemas.RegenerateKeyRequest,
    ),
    Route(
        "POST",
        "/key/{key}/regenerate",
        keys.regenerate,
        "Replace a key with a new one",
        schemas.RegenerateKeyRequest,
    ),
    Route("POST", "/key/block", keys.block, "Block a key", schemas.BlockKeyRequest),
    Route("POST", "/key/unblock", keys.unblock, "Unblock a key", schemas.BlockKeyRequest),
    *_crud(
        "user",
        (users.new, users.info, users.update, users.delete, users.list_users),
        (schemas.NewUserRequest, schemas.UpdateUserRequest, schemas.DeleteUserRequest),
        "user_id",
        list_query=("page", "page_size", "role"),
    ),
    *_crud(
        "team",
        (teams.new, teams.info, teams.update, teams.delete, teams.list_teams),
        (schemas.NewTeamRequest, schemas.UpdateTeamRequest, schemas.DeleteTeamRequest),
        "team_id",
        list_query=("organization_id", "page", "size"),
    ),
    Route(
        "POST",
        "/team/member_add",
        teams.member_add,
        "Add team members",
        schemas.TeamMemberAddRequest,
    ),
    Route(
        "POST",
        "/team/member_delete",
        teams.member_delete,
        "Remove a team member",
        schemas.TeamMemberDeleteRequest,
    ),
    Route(
        "POST",
        "/team/member_update",
        teams.member_update,
        "Change a member's role or budget",
        schemas.TeamMemberUpdateRequest,
    ),
    *_crud(
        "organization",
        (
            organizations.organization_new,
            organizations.organization_info,
            organizations.organization_update,
            organizations.organization_delete,
            organizations.organization_list,
        ),
        (
            schemas.NewOrganizationRequest,
            schemas.UpdateOrganizationRequest,
            schemas.DeleteOrganizationRequest,
        ),
        "organization_id",
        update=("PATCH", "POST"),  # LiteLLM's methods, and POST for scripts that use it
        delete=("DELETE", "POST"),
    ),
    *_crud(
        "customer",
        (
            customers.customer_new,
            customers.customer_info,
            customers.customer_update,
            customers.customer_delete,
            customers.customer_list,
        ),
        (schemas.NewCustomerRequest, schemas.UpdateCustomerRequest, schemas.DeleteCustomerRequest),
        "end_user_id",
    ),
    Route("POST", "/budget/new", budgets.budget_new, "Create a budget", schemas.BudgetNewRequest),
    Route("POST", "/budget/info", budgets.budget_info, "Budgets by id", schemas.BudgetRequest),
    Route(
        "POST",
        "/budget/update",
        budgets.budget_update,
        "Update a budget",
        schemas.BudgetUpdateRequest,
    ),
    Route(
        "POST",
        "/budget/delete",
        budgets.budget_delete,
        "Delete a budget",
        schemas.BudgetDeleteRequest,
    ),
    Route("GET", "/budget/list", budgets.budget_list, "List budgets"),
    Route(
        "GET",
        "/spend/logs",
        spend.logs,
        "Spend rows by key, user, team and dates",
        query=("api_key", "user_id", "team_id", "request_id", "start_date", "end_date", "limit"),
    ),
    Route(
        "GET",
        "/global/spend/report",
        spend.report,
        "Spend per day and group",
        query=("start_date", "end_date", "group_by"),
    ),
    Route(
        "GET",
        "/audit/logs",
        spend.audit_logs,
        "The audit log (proxy admins)",
        query=("object_type", "object_id", "action", "start_date", "page", "page_size"),
    ),
]


def add_management_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
