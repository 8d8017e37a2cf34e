"""The management API (issue #17): LiteLLM's key, user, team, organization, customer,
budget and spend endpoints over the system of record (`workers/db`), with roles
(`access.py`) and an audit row for every change. `ROUTES` is the one list: it registers the
routes and describes them in the OpenAPI document (`openapi.py`)."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from broker.management import schemas
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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _handler(module: str, name: str) -> Handler:
    """`broker.management.<module>.<name>`, imported on its first call, or at start when a
    database is configured (state.HANDLER_MODULES): each imports SQLAlchemy, ~30 MiB that a
    front door without a database never needs (issue #22)."""
    found: list[Handler] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        if not found:
            found.append(getattr(importlib.import_module(f"{__name__}.{module}"), name))
        return await found[0](request)

    handle.__name__ = handle.__qualname__ = f"{module}.{name}"
    return handle


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
        _handler("keys", "generate"),
        "Create a key (returned once)",
        schemas.GenerateKeyRequest,
    ),
    Route(
        "POST", "/key/update", _handler("keys", "update"), "Update a key", schemas.UpdateKeyRequest
    ),
    Route(
        "GET",
        "/key/info",
        _handler("keys", "info"),
        "A key, its spend and remaining budget",
        query=("key",),
    ),
    Route(
        "GET",
        "/key/list",
        _handler("keys", "list_keys"),
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
    Route("POST", "/key/delete", _handler("keys", "delete"), "Delete keys", schemas.KeyRequest),
    Route(
        "POST",
        "/key/regenerate",
        _handler("keys", "regenerate"),
        "Replace a key with a new one",
        schemas.RegenerateKeyRequest,
    ),
    Route(
        "POST",
        "/key/{key}/regenerate",
        _handler("keys", "regenerate"),
        "Replace a key with a new one",
        schemas.RegenerateKeyRequest,
    ),
    Route("POST", "/key/block", _handler("keys", "block"), "Block a key", schemas.BlockKeyRequest),
    Route(
        "POST",
        "/key/unblock",
        _handler("keys", "unblock"),
        "Unblock a key",
        schemas.BlockKeyRequest,
    ),
    *_crud(
        "user",
        (
            _handler("users", "new"),
            _handler("users", "info"),
            _handler("users", "update"),
            _handler("users", "delete"),
            _handler("users", "list_users"),
        ),
        (schemas.NewUserRequest, schemas.UpdateUserRequest, schemas.DeleteUserRequest),
        "user_id",
        list_query=("page", "page_size", "role"),
    ),
    *_crud(
        "team",
        (
            _handler("teams", "new"),
            _handler("teams", "info"),
            _handler("teams", "update"),
            _handler("teams", "delete"),
            _handler("teams", "list_teams"),
        ),
        (schemas.NewTeamRequest, schemas.UpdateTeamRequest, schemas.DeleteTeamRequest),
        "team_id",
        list_query=("organization_id", "page", "size"),
    ),
    Route(
        "POST",
        "/team/member_add",
        _handler("teams", "member_add"),
        "Add team members",
        schemas.TeamMemberAddRequest,
    ),
    Route(
        "POST",
        "/team/member_delete",
        _handler("teams", "member_delete"),
        "Remove a team member",
        schemas.TeamMemberDeleteRequest,
    ),
    Route(
        "POST",
        "/team/member_update",
        _handler("teams", "member_update"),
        "Change a member's role or budget",
        schemas.TeamMemberUpdateRequest,
    ),
    *_crud(
        "organization",
        (
            _handler("organizations", "organization_new"),
            _handler("organizations", "organization_info"),
            _handler("organizations", "organization_update"),
            _handler("organizations", "organization_delete"),
            _handler("organizations", "organization_list"),
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
            _handler("customers", "customer_new"),
            _handler("customers", "customer_info"),
            _handler("customers", "customer_update"),
            _handler("customers", "customer_delete"),
            _handler("customers", "customer_list"),
        ),
        (schemas.NewCustomerRequest, schemas.UpdateCustomerRequest, schemas.DeleteCustomerRequest),
        "end_user_id",
    ),
    Route(
        "POST",
        "/budget/new",
        _handler("budgets", "budget_new"),
        "Create a budget",
        schemas.BudgetNewRequest,
    ),
    Route(
        "POST",
        "/budget/info",
        _handler("budgets", "budget_info"),
        "Budgets by id",
        schemas.BudgetRequest,
    ),
    Route(
        "POST",
        "/budget/update",
        _handler("budgets", "budget_update"),
        "Update a budget",
        schemas.BudgetUpdateRequest,
    ),
    Route(
        "POST",
        "/budget/delete",
        _handler("budgets", "budget_delete"),
        "Delete a budget",
        schemas.BudgetDeleteRequest,
    ),
    Route("GET", "/budget/list", _handler("budgets", "budget_list"), "List budgets"),
    Route(
        "GET",
        "/spend/logs",
        _handler("spend", "logs"),
        "Spend rows by key, user, team and dates",
        query=("api_key", "user_id", "team_id", "request_id", "start_date", "end_date", "limit"),
    ),
    Route(
        "GET",
        "/global/spend/report",
        _handler("spend", "report"),
        "Spend per day and group",
        query=("start_date", "end_date", "group_by"),
    ),
    Route(
        "GET",
        "/audit/logs",
        _handler("spend", "audit_logs"),
        "The audit log (proxy admins)",
        query=("object_type", "object_id", "action", "start_date", "page", "page_size"),
    ),
]


def add_management_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
