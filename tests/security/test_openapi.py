"""The OpenAPI document at /openapi.json: valid OpenAPI 3.1, generated from the wire Structs,
served without a key and naming nothing from the config, and describing every route the app
registers (so a new endpoint cannot be forgotten, and the fuzz test reaches it)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from broker.app import create_app
from broker.openapi import REF, STRUCTS, build_document
from tests.broker.harness import RunningFrontDoor, make_config, service
from tests.redis_helpers import REDIS_URL

KEY = "sk-master-openapi"
# Nothing listens here: these tests never reach a provider.
UPSTREAM = "http://127.0.0.1:9/v1"
MASTER = f"general_settings:\n  master_key: {KEY}\n"
# aiohttp registers HEAD beside every GET; it answers like the GET without a body.
IMPLIED_METHODS = {"HEAD"}


@pytest.fixture
async def door(namespace: str) -> AsyncIterator[RunningFrontDoor]:
    async with service(make_config(UPSTREAM, namespace, general=MASTER), workers=0) as (
        [front],
        _,
    ):
        yield front


async def fetch_document(door: RunningFrontDoor) -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(door.url + "/openapi.json") as response,
    ):
        return response.status, response.content_type, await response.read()


def registered_routes(namespace: str) -> set[tuple[str, str]]:
    app = create_app(make_config(UPSTREAM, namespace, general=MASTER), REDIS_URL)
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method not in IMPLIED_METHODS
    }


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


async def test_the_served_document_is_valid_openapi_3_1(door: RunningFrontDoor) -> None:
    status, content_type, body = await fetch_document(door)
    assert (status, content_type) == (200, "application/json")
    document = json.loads(body)
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises OpenAPIValidationError with the offending path


async def test_the_document_needs_no_key_and_names_nothing_from_the_config(
    door: RunningFrontDoor,
) -> None:
    status, _, body = await fetch_document(door)
    assert status == 200
    for configured in (KEY, "gpt-test", "embed-test", "127.0.0.1", "sk-fake"):
        assert configured.encode() not in body


def test_every_registered_route_is_in_the_document(namespace: str) -> None:
    registered = registered_routes(namespace)
    documented = documented_routes(build_document())
    assert registered - documented == set(), "routes missing from broker/openapi.py"
    assert documented - registered == set(), "documented routes the app does not serve"
    assert ("POST", "/v1/chat/completions") in registered


def test_request_schemas_are_the_wire_structs_own() -> None:
    _, generated = msgspec.json.schema_components(STRUCTS, ref_template=REF)
    document = build_document()
    assert document["components"]["schemas"] == generated
    chat = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    refs = chat["content"]["application/json"]["schema"]["allOf"]
    assert {"$ref": "#/components/schemas/ChatCompletionRequest"} in refs


@pytest.mark.parametrize(
    ("body", "is_valid"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}], "timeout": 5}, True),
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}], "future": 1}, True),
        ({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}, False),
        ({"model": "m", "messages": [{"role": "user"}], "num_retries": "two"}, False),
        ({"messages": []}, False),
    ],
)
def test_the_chat_body_schema_accepts_what_the_front_door_accepts(
    body: dict[str, Any], is_valid: bool
) -> None:
    document = build_document()
    operation = document["paths"]["/v1/chat/completions"]["post"]
    schema = {
        **operation["requestBody"]["content"]["application/json"]["schema"],
        "components": document["components"],
    }
    assert OAS31Validator(schema).is_valid(body) is is_valid


def test_every_error_response_is_the_error_shape() -> None:
    document = build_document()
    for name, response in document["components"]["responses"].items():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, name
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]) == {"message", "type", "param", "code"}
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyAuth"}
