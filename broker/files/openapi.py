"""/v1/files and /v1/batches in the OpenAPI document (issue #20): the upload as
multipart/form-data, the batch body from its Struct, answers in OpenAI's shapes."""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/{name}"
ERRORS = ("400", "401", "404", "405", "409", "413", "415", "500")
OBJECT = {"application/json": {"schema": {"type": "object"}}}
ID_PARAMETERS = {
    name: {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
    for name in ("file_id", "batch_id")
}
LIST_PARAMETERS = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
    for name in ("limit", "after", "order", "purpose")
]
UPLOAD = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "purpose"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "purpose": {"type": "string", "enum": ["batch", "user_data", "evals"]},
                },
            }
        }
    },
}


def _operation(op: str, summary: str, **extra: Any) -> dict[str, Any]:
    return {
        "operationId": op,
        "summary": summary,
        "tags": ["batches"],
        "responses": {
            "200": {"description": summary, "content": extra.pop("content", OBJECT)},
            **{s: {"$ref": f"#/components/responses/Error{s}"} for s in ERRORS},
        },
        **extra,
    }


def file_paths() -> dict[str, Any]:
    file_id = [ID_PARAMETERS["file_id"]]
    binary = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    return {
        "/v1/files": {
            "post": _operation("createFile", "Upload a file", requestBody=UPLOAD),
            "get": _operation("listFiles", "This key's files", parameters=LIST_PARAMETERS),
        },
        "/v1/files/{file_id}": {
            "get": _operation("retrieveFile", "A file's object", parameters=file_id),
            "delete": _operation("deleteFile", "Delete a file", parameters=file_id),
        },
        "/v1/files/{file_id}/content": {
            "get": _operation("downloadFile", "A file's bytes", parameters=file_id, content=binary),
        },
    }


def batch_paths() -> dict[str, Any]:
    batch_id = [ID_PARAMETERS["batch_id"]]
    body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": REF.format(name="CreateBatch")}}},
    }
    limits = [p for p in LIST_PARAMETERS if p["name"] in ("limit", "after")]
    return {
        "/v1/batches": {
            "post": _operation("createBatch", "Create a batch", requestBody=body),
            "get": _operation("listBatches", "This key's batches", parameters=limits),
        },
        "/v1/batches/{batch_id}": {
            "get": _operation("retrieveBatch", "A batch", parameters=batch_id),
        },
        "/v1/batches/{batch_id}/cancel": {
            "post": _operation("cancelBatch", "Cancel a batch", parameters=batch_id),
        },
    }
