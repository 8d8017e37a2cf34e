"""The console's routes in the OpenAPI document, so that the route check knows them and the
fuzz test sends them hostile requests too. They authenticate with the session cookie and the
CSRF header, not a key (docs/console.md)."""

from __future__ import annotations

from typing import Any

ERRORS = ("400", "401", "403", "404", "405", "413", "415", "503")
PUBLIC: list[dict[str, list[str]]] = []
JSON_ANSWER = {"application/json": {"schema": {"type": "object"}}}
HTML = {"text/html": {"schema": {"type": "string"}}}
CSRF = {"name": "X-CSRF-Token", "in": "header", "required": False, "schema": {"type": "string"}}
# Whatever the public API call takes (its own schema is the API's); the usual fields shown.
CALL_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "key_alias": {"type": "string"},
                    "team_id": {"type": "string"},
                    "models": {"type": "array", "items": {"type": "string"}},
                    "max_budget": {"type": "number"},
                },
            }
        }
    },
}
SIGN_IN = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"key": {"type": "string"}},
                "required": ["key"],
                "additionalProperties": False,
            }
        }
    },
}


def _operation(
    op: str,
    summary: str,
    content: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op,
        "summary": summary,
        "tags": ["console"],
        "security": PUBLIC,
        "responses": {
            "200": {"description": summary, "content": content},
            **{s: {"$ref": f"#/components/responses/Error{s}"} for s in ERRORS},
        },
    }
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    return operation


def console_paths() -> dict[str, Any]:
    page = "The console's page (docs/console.md)"
    path_param = {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    call = "A public API call made with the signed-in session's key"
    return {
        "/ui": {"get": _operation("consolePage", page, HTML)},
        "/ui/": {"get": _operation("consolePage2", page, HTML)},
        "/ui/static/{name}": {
            "get": _operation(
                "consoleStatic",
                "The console's scripts, styles and Chart.js",
                {"*/*": {"schema": {"type": "string"}}},
                parameters=[name_param],
            )
        },
        "/ui/api/session": {
            "get": _operation("consoleSession", "Who is signed in, and a CSRF token", JSON_ANSWER),
            "post": _operation(
                "consoleSignIn",
                "Sign in with a key; sets the session cookie",
                JSON_ANSWER,
                body=SIGN_IN,
                parameters=[CSRF],
            ),
        },
        "/ui/api/session/end": {
            "post": _operation("consoleSignOut", "Sign out", JSON_ANSWER, parameters=[CSRF])
        },
        "/ui/api/call/{path}": {
            "get": _operation("consoleCallGet", call, JSON_ANSWER, parameters=[path_param, CSRF]),
            "post": _operation(
                "consoleCallPost", call, JSON_ANSWER, body=CALL_BODY, parameters=[path_param, CSRF]
            ),
        },
    }
