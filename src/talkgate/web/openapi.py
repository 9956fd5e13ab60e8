"""The OpenAPI document: FastAPI's, with talkgate's error body and the error statuses each route can
answer with, so that /docs shows what a failure looks like as well as a success."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from talkgate.errors import ErrorCode

REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    code: ErrorCode = Field(description="Stable, machine-readable: what went wrong")
    message: str = Field(description="For people: what went wrong and, where it helps, what to do")


class ErrorBody(BaseModel):
    """Every error talkgate answers with, request validation's included."""

    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


UNAUTHORIZED = _error(
    "No bearer token or one for another audience (`unauthorized`), an expired one (`token_expired`), "
    "one not signed with this server's key (`token_bad_signature`), or not a JWT (`token_malformed`)"
)
NOT_FOUND = _error("Nothing of this user's by that id (another user's rows are not found either)")
UNAVAILABLE = _error("The database or the recording store is unavailable; try again shortly")
BAD_SIGNATURE = _error("The ElevenLabs-Signature header is missing, stale or does not match the body")
# Routes that authenticate their caller by a signature of their own rather than a user's token.
SIGNED_BY_CALLER = frozenset({"/api/elevenlabs/webhook"})
INVALID = _error(
    "A parameter or a body field is invalid (`bad_request`, the message naming the fields) or names "
    "something unknown (e.g. `unknown_voice`)"
)


def error_responses(path: str, operation: dict[str, Any]) -> dict[str, Any]:
    """The error statuses of one operation: 401 where a token is needed, 404 where an id is in the
    path, 422 where anything is read from the request, 503 for every route that reads the database."""
    responses: dict[str, Any] = {}
    secured = bool(operation.get("security"))
    if secured:
        responses["401"] = UNAUTHORIZED
    elif path in SIGNED_BY_CALLER:
        responses["401"] = BAD_SIGNATURE
    if "{" in path:
        responses["404"] = NOT_FOUND
    if operation.get("parameters") or operation.get("requestBody"):
        responses["422"] = INVALID
    if secured:
        responses["503"] = UNAVAILABLE
    return responses


def document(api: FastAPI) -> None:
    """Replace ``api.openapi`` with one that adds the error responses (computed once, cached)."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            spec = get_openapi(title=api.title, version=api.version, routes=api.routes)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in ErrorBody.model_json_schema(ref_template=REF).pop("$defs", {}).items():
                schemas.setdefault(name, schema)
            schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template=REF)
            schemas["ErrorBody"].pop("$defs", None)
            for path, operations in spec.get("paths", {}).items():
                for operation in operations.values():
                    for status, response in error_responses(path, operation).items():
                        operation.setdefault("responses", {})[status] = response
            _drop_unused(spec, ("HTTPValidationError", "ValidationError"))
            api.openapi_schema = spec
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def _drop_unused(spec: dict[str, Any], names: tuple[str, ...]) -> None:
    """FastAPI's validation-error schemas: no answer has that shape any more (talkgate's 422 is
    its error body), so they go unless something still refers to them."""
    schemas = spec["components"]["schemas"]
    dropped = {name: schemas.pop(name) for name in names if name in schemas}
    text = json.dumps(spec)
    for name, schema in dropped.items():
        if REF.format(model=name) in text:
            schemas[name] = schema
