"""The auth part of the OpenAPI document: the `/v1/auth/...` paths, the bearer-token
scheme, and the 401/403/429 answers every protected operation may give. Merged into
`/v1/openapi.json` by the HTTP guard when auth is on, so the served document describes
exactly what the node serves (the error codes of auth included)."""

from __future__ import annotations

import copy
from typing import Any

from accord.api.openapi import error_code_schema
from accord.security.http_guard import PUBLIC_PATHS

_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_RETRY_LATER = {
    "description": "rate_limited or login_locked: too many attempts; retry after Retry-After",
    "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
    "content": _ERROR["content"],
}
_OK = {"200": {"description": "done"}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_ROLE = {"name": "role", "in": "path", "required": True, "schema": {"type": "string"}}


def _body(*fields: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {f: {"type": "string"} for f in fields},
        "required": list(required or fields),
        "additionalProperties": False,
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


AUTH_PATHS: dict[str, Any] = {
    "/v1/auth/login": {
        "post": {
            "summary": "Log in: a token for the Authorization: Bearer header",
            "requestBody": _body("user", "password"),
            "responses": {
                "200": {"description": "token and expires_at_ms"},
                "401": _ERROR,
                "429": _RETRY_LATER,
            },
        }
    },
    "/v1/auth/whoami": {"get": {"summary": "The authenticated user", "responses": _OK}},
    "/v1/auth": {"get": {"summary": "Users and roles (root)", "responses": _OK}},
    "/v1/auth/users": {
        "post": {
            "summary": "Add a user (root)",
            "requestBody": _body("name", "password"),
            "responses": _OK,
        }
    },
    "/v1/auth/users/{name}": {
        "delete": {"summary": "Delete a user (root)", "parameters": [_NAME], "responses": _OK}
    },
    "/v1/auth/users/{name}/password": {
        "put": {
            "summary": "Change a password (root); the user's tokens stop working",
            "parameters": [_NAME],
            "requestBody": _body("password"),
            "responses": _OK,
        }
    },
    "/v1/auth/users/{name}/roles/{role}": {
        "put": {"summary": "Grant a role (root)", "parameters": [_NAME, _ROLE], "responses": _OK},
        "delete": {
            "summary": "Revoke a role (root)",
            "parameters": [_NAME, _ROLE],
            "responses": _OK,
        },
    },
    "/v1/auth/roles": {
        "post": {"summary": "Add a role (root)", "requestBody": _body("name"), "responses": _OK}
    },
    "/v1/auth/roles/{name}": {
        "delete": {"summary": "Delete a role (root)", "parameters": [_NAME], "responses": _OK}
    },
    "/v1/auth/roles/{name}/grant": {
        "post": {
            "summary": "Grant read, write or readwrite on a key prefix (root)",
            "parameters": [_NAME],
            "requestBody": _body("prefix", "permission"),
            "responses": _OK,
        }
    },
    "/v1/auth/roles/{name}/revoke": {
        "post": {
            "summary": "Revoke a role's grant on a prefix (root)",
            "parameters": [_NAME],
            "requestBody": _body("prefix"),
            "responses": _OK,
        }
    },
}


def with_auth(document: dict[str, Any]) -> dict[str, Any]:
    """`document` (the API's OpenAPI spec) with the auth paths and answers added."""
    merged = copy.deepcopy(document)
    merged["paths"].update(copy.deepcopy(AUTH_PATHS))
    components = merged.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
    error = components.get("schemas", {}).get("Error", {}).get("properties", {}).get("error")
    if error is not None:  # the codes only auth answers with join the list
        error["properties"]["code"] = error_code_schema(auth=True)
    merged["security"] = [{"bearer": []}]
    for path, operations in merged["paths"].items():
        for operation in operations.values():
            if path in PUBLIC_PATHS:
                operation["security"] = []
                continue
            responses = operation.setdefault("responses", {})
            for status in ("401", "403", "429"):
                responses.setdefault(status, _ERROR)
    return merged
