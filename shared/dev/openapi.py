"""The API, written down: an OpenAPI 3.1 document generated from the functions
themselves (their body models, return annotations, auth and content types)."""

from __future__ import annotations

import importlib.util
import json
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter

from shared.dev.localdb import REPO_ROOT
from shared.http import REGISTRY, Auth, EndpointInfo

FUNCTIONS_DIR = REPO_ROOT / "functions"
SPEC_PATH = REPO_ROOT / "openapi.json"
REF = "#/components/schemas/{model}"

SUMMARIES = {
    "grade_submission": "Grade a submission, record a witness verdict, or vouch for an AI fail",
    "trigger_consequence": "Execute one consequence, exactly once",
    "send_notification": "Queue and send one notification, once",
    "check_deadlines": "Detect missed deadlines, send reminders, dispatch consequences",
    "holding_cell": "Deposit into, withdraw from, or read the holding cell",
    "stripe_webhook": "Receive Stripe's signed events",
    "upload_kompromat": "Upload kompromat, encrypted before it is stored",
    "connect_x": "Connect or disconnect the user's X account",
    "contest_consequence": "Contest a held consequence, once, with a reason; an operator decides",
    "operator_review": "Operators: list open review items, show one, decide a submission or a contested consequence,"
    " resolve a money item",
    "operator_console": "Operators: the console page (GET), its script and style (?asset=)",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = Field(default=None)


class ErrorBody(BaseModel):
    error: ErrorDetail


def load_functions(functions_dir: Path = FUNCTIONS_DIR) -> dict[str, EndpointInfo]:
    """Import every functions/<name>/main.py so each registers its endpoint."""
    for path in sorted(functions_dir.glob("*/main.py")):
        name = f"threativator_function_{path.parent.name}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return dict(sorted(REGISTRY.items()))


def _schema(annotation: Any, components: dict[str, Any]) -> dict[str, Any]:
    schema = TypeAdapter(annotation).json_schema(ref_template=REF, mode="validation")
    components.update(schema.pop("$defs", {}))
    return schema


def _response_schema(info: EndpointInfo, components: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(info.handler)
    annotation = hints.get("return", Any)
    if annotation is type(None) or annotation is None:
        return {"type": "object"}
    schema = TypeAdapter(annotation).json_schema(ref_template=REF, mode="serialization")
    components.update(schema.pop("$defs", {}))
    return schema


def _ok(info: EndpointInfo, components: dict[str, Any]) -> dict[str, Any]:
    """A JSON answer's schema; a page (a handler that answers a flask Response) is text."""
    import flask

    if typing.get_type_hints(info.handler).get("return") is flask.Response:
        return {
            "description": "The page (text/html), or with ?asset= its script or style",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    return {"description": "OK", "content": {"application/json": {"schema": _response_schema(info, components)}}}


def _security(auth: Auth) -> list[dict[str, list[str]]]:
    if auth is Auth.NONE:
        return []
    if auth is Auth.OPTIONAL:
        return [{}, {"bearer": []}]
    return [{"bearer": []}]


def _request_body(info: EndpointInfo, components: dict[str, Any]) -> dict[str, Any] | None:
    if info.body is not None:
        return {
            "required": True,
            "content": {ctype: {"schema": _schema(info.body, components)} for ctype in info.content_types},
        }
    if "multipart/form-data" in info.raw_content_types:
        return {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "severity"],
                        "properties": {
                            "file": {"type": "string", "contentMediaType": "application/octet-stream"},
                            "severity": {"type": "string", "enum": ["minor", "major"]},
                            "description": {"type": "string", "maxLength": 500},
                        },
                    }
                }
            },
        }
    if info.raw_content_types:
        return {"required": True, "content": {c: {"schema": {"type": "object"}} for c in info.raw_content_types}}
    return None


_ERRORS = {
    "400": "The body is malformed or breaks a rule (the field is named)",
    "401": "Missing or invalid credentials",
    "403": "The caller may not do this",
    "404": "Not found",
    "405": "Wrong method",
    "409": "Conflicts with the current state",
    "413": "The body is too large",
    "415": "Wrong content type",
    "503": "Briefly unavailable; retry after Retry-After",
}


def build(functions_dir: Path = FUNCTIONS_DIR) -> dict[str, Any]:
    components: dict[str, Any] = {}
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    paths: dict[str, Any] = {}
    for name, info in load_functions(functions_dir).items():
        operation: dict[str, Any] = {
            "operationId": name,
            "summary": SUMMARIES.get(name, name),
            "security": _security(info.auth),
            "responses": {
                "200": _ok(info, components),
                **{
                    code: {"description": text, "content": {"application/json": {"schema": error_ref}}}
                    for code, text in _ERRORS.items()
                },
            },
        }
        body = _request_body(info, components)
        if body is not None:
            operation["requestBody"] = body
        if name == "stripe_webhook":
            operation["parameters"] = [
                {"name": "Stripe-Signature", "in": "header", "required": True, "schema": {"type": "string"}}
            ]
        if name == "trigger_consequence" or name == "check_deadlines":
            operation["description"] = "Service callers only: a service_role JWT or a Google OIDC token."
        paths[f"/{name}"] = {method.lower(): operation for method in info.methods}
    error_schema = TypeAdapter(ErrorBody).json_schema(ref_template=REF)
    components.update(error_schema.pop("$defs", {}))
    components["ErrorBody"] = error_schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Threativator backend",
            "version": "1.0.0",
            "description": 'One HTTP function per path; every error is {"error": {code, message, details}}.',
        },
        "servers": [{"url": "http://127.0.0.1:8080", "description": "make dev"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=False) + "\n"
