"""The management API in the OpenAPI document: one operation per entry of `ROUTES`, request
schemas generated from the bodies' Structs (so the fuzz test generates from what the API
decodes), answers as JSON objects or arrays."""

from __future__ import annotations

import re
from typing import Any

from broker.management import ROUTES

REF = "#/components/schemas/{name}"
# What a management call can answer besides success (403: the role may not; 503: no database).
ERRORS = ("400", "401", "403", "404", "405", "413", "415", "503")
JSON_ANSWER = {
    "application/json": {
        "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
    }
}


def _operation_id(method: str, path: str) -> str:
    words = re.findall(r"[a-z]+", path.replace("{key}", "by_key"))
    return method.lower() + "".join(word.title() for word in words)


# The request bodies, for the document's components (broker/openapi.py's STRUCTS).
MANAGEMENT_BODIES = tuple(
    sorted({route.body for route in ROUTES if route.body is not None}, key=lambda b: b.__name__)
)


def management_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in ROUTES:
        operation: dict[str, Any] = {
            "operationId": _operation_id(route.method, route.path),
            "summary": route.summary,
            "tags": ["management"],
            "responses": {
                "200": {"description": route.summary, "content": JSON_ANSWER},
                **{s: {"$ref": f"#/components/responses/Error{s}"} for s in ERRORS},
            },
        }
        parameters = [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in route.query
        ]
        if "{key}" in route.path:
            parameters.append(
                {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
            )
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            schema = {"$ref": REF.format(name=route.body.__name__)}
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return paths
