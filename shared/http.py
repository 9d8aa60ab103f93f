"""The one wrapper every HTTP function goes through.

It answers CORS preflights, checks the method, authenticates the caller, caps
and types the body, parses it into a pydantic model, calls the handler, maps
every failure to the JSON error shape, and writes one log line per request.
No stack trace ever reaches the client.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar
from uuid import UUID

import flask
from pydantic import BaseModel, TypeAdapter, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from shared import db, log
from shared.auth import Caller, identify
from shared.config import ConfigError, Settings, get_settings
from shared.errors import ApiError, bad_request, forbidden, refuse_control_characters, unauthorized, unavailable

B = TypeVar("B")
_logger = logging.getLogger("threativator.http")


class Auth(StrEnum):
    """Who may call a function."""

    NONE = "none"  # the request carries its own credential (a signature, a signed token)
    USER = "user"  # a signed-in user's JWT
    SERVICE = "service"  # a service_role JWT: scheduler, pg_net, other functions
    OPTIONAL = "optional"  # verified when present; the handler decides what each action needs


@dataclass(frozen=True)
class Call(Generic[B]):
    """What a handler receives: the parsed body, the verified caller and the raw request."""

    body: B
    caller: Caller | None
    request: flask.Request
    trace_id: str | None = None

    @property
    def user_id(self) -> UUID:
        """The verified signed-in user; 401 when the caller is not one (never an assert)."""
        if self.caller is None or self.caller.user_id is None:
            raise unauthorized("a signed-in user's token is required")
        return self.caller.user_id


@dataclass
class Reply:
    """A handler's answer when it is not a plain 200."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call[Any]], Any]


@dataclass(frozen=True)
class EndpointInfo:
    """What the OpenAPI document says about a function; registered by `endpoint`."""

    name: str
    body: Any
    auth: Auth
    methods: tuple[str, ...]
    content_types: tuple[str, ...]
    raw_content_types: tuple[str, ...]
    handler: Handler


REGISTRY: dict[str, EndpointInfo] = {}

# Postgres errors our triggers and state functions raise on purpose, by SQLSTATE.
# Their primary messages are written by us or name only a constraint, never a value.
_DB_RULE_STATUS = {
    "23505": (409, "conflict"),
    "23503": (400, "invalid_reference"),
    "23514": (400, "rule_violated"),
    "23502": (400, "missing_value"),
    "22P02": (400, "invalid_value"),
    "22023": (400, "invalid_value"),
    "42501": (403, "forbidden"),
    "P0002": (404, "not_found"),
    "55000": (409, "invalid_state"),
    "TI001": (422, "idempotency_key_reused"),
    "TI003": (429, "rate_limited"),
    "TI004": (402, "insufficient_funds"),
}
# What the page reads when PostgreSQL itself (not our SQL) refused: its own messages name
# constraints, tables and columns, which never leave the service.
_GENERIC_MESSAGE = {
    "23505": "this conflicts with something that already exists",
    "23503": "this refers to something that does not exist",
    "23514": "this breaks one of the service's rules",
    "23502": "a required value is missing",
}


def trace_id_of(request: flask.Request) -> str | None:
    header = request.headers.get("X-Cloud-Trace-Context", "")
    trace = header.split("/", 1)[0].strip()
    return trace or None


def _json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> flask.Response:
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    text = json.dumps(body, default=str)
    if status == 413:
        # The rest of an oversized body is never read: functions-framework drains the request after
        # every non-streamed response, which would read (or, past the limit, fail on) all of it.
        # A streamed answer is left alone, and the connection is closed instead.
        response = flask.Response(iter([text]), status=status, mimetype="application/json")
        response.headers["Connection"] = "close"
        response.headers["Content-Length"] = str(len(text.encode()))
        return response
    response = flask.Response(text, status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


# What a page may send, and read back, across origins. supabase-js sends apikey and X-Client-Info.
ALLOWED_REQUEST_HEADERS = "Authorization, Content-Type, X-Client-Info, apikey"
EXPOSED_HEADERS = "Retry-After, WWW-Authenticate, Allow"


def cors_headers(request: flask.Request, methods: Iterable[str]) -> dict[str, str]:
    """Every answer varies by Origin; an allowed origin is told it may read the answer (errors
    included) and the headers a page needs, and a preflight which methods and headers it may send."""
    origin = (request.headers.get("Origin") or "").rstrip("/")
    allowed = get_settings().allowed_origins()
    if not origin or (origin not in allowed and "*" not in allowed):
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": ", ".join(sorted({*methods, "OPTIONS"})),
        "Access-Control-Allow-Headers": ALLOWED_REQUEST_HEADERS,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Access-Control-Max-Age": "3600",
        "Vary": "Origin",
    }


def _read_body(request: flask.Request, limit: int) -> bytes:
    """The whole body, read here and kept, never more than `limit` bytes, chunked or not.

    functions-framework reads whatever a handler left of the body after the answer (an
    after_request hook), unbounded and outside any handler, so a body is read here, for every
    method, before anything answers; past the limit the answer is a 413 that the hook leaves be."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes")
    # werkzeug stops reading a chunked body at max_content_length (quietly): one byte more than the
    # limit tells a body that is too large from one that is exactly the limit.
    request.max_content_length = limit + 1
    too_large = ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes")
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(data) > limit:
        raise too_large
    return data


def _unread(response: flask.Response) -> flask.Response:
    """An answer given before the body was read in full: streamed, so the framework's after_request
    hook does not read the rest (it skips streamed answers); the connection is then closed."""
    body = response.get_data()
    streamed = flask.Response(iter([body]), status=response.status_code, headers=dict(response.headers))
    streamed.headers["Connection"] = "close"
    return streamed


def _validation_details(error: ValidationError) -> list[dict[str, Any]]:
    # include_input=False: the rejected values may be tokens or personal data.
    details = []
    for item in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in item["loc"])
        if not field and item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # A bad or missing discriminator ("type", "action") has no location of its own.
            # A callable discriminator is named after the field it reads: `_type()` reads "type".
            field = str((item.get("ctx") or {}).get("discriminator", "")).strip("'\"").removesuffix("()").lstrip("_")
        details.append({"field": field or "body", "message": item["msg"], "type": item["type"]})
    return details


def parse_body(adapter: TypeAdapter[Any], raw: bytes) -> Any:
    """Parse raw JSON into the model; a bad field is a 400 that names it."""
    if not raw.strip():
        raise bad_request("the request body must be a JSON object", code="invalid_body")
    try:
        parsed = adapter.validate_json(raw)
    except ValidationError as error:
        details = _validation_details(error)
        if any(d["type"] == "json_invalid" for d in details):
            raise bad_request("the request body is not valid JSON", code="invalid_json") from None
        names = ", ".join(d["field"] for d in details)
        raise bad_request(f"invalid field(s): {names}", details, code="invalid_body") from None
    if b"\\u00" in raw:  # only an escape can put a control character in JSON text
        refuse_control_characters(json.loads(raw))
    return parsed


def _require_type(request: flask.Request, allowed: tuple[str, ...]) -> None:
    if request.mimetype not in allowed:
        raise ApiError(415, "unsupported_media_type", f"send the body as {' or '.join(allowed)}")


def _authorize(request: flask.Request, auth: Auth, *, webhooks: bool = False) -> Caller | None:
    if webhooks and "X-Webhook-Secret" in request.headers:
        return _database_webhook(request.headers["X-Webhook-Secret"])
    if auth is Auth.NONE:
        return None
    caller = identify(request.headers.get("Authorization"), request.headers.get("apikey"), service=auth is Auth.SERVICE)
    if caller is None:
        # No credential, a publishable key or an anon JWT: a logged-out browser.
        if auth is Auth.OPTIONAL:
            return None
        raise unauthorized(
            "a signed-in user's token is required" if auth is Auth.USER else "a service credential is required"
        )
    if auth is Auth.SERVICE and not caller.is_service:
        raise forbidden("this function accepts service callers only")
    if auth is Auth.USER and caller.is_service:
        raise forbidden("this function is called on behalf of a signed-in user")
    return caller


def _database_webhook(secret: str) -> Caller:
    """A Supabase Database Webhook: its X-Webhook-Secret must equal DATABASE_WEBHOOK_SECRET."""
    import hmac

    expected = get_settings().database_webhook_secret
    if expected is None or not hmac.compare_digest(secret.encode(), expected.get_secret_value().encode()):
        raise unauthorized("invalid webhook secret")
    return Caller(role="service_role", claims={"webhook": True})


def database_rule_error(error: BaseException) -> ApiError | None:
    """Map an error our SQL raises on purpose to a 4xx; None for anything else."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(error, psycopg.Error):
        return None  # psycopg never loaded: not a database error
    sqlstate = error.sqlstate or ""
    mapped = _DB_RULE_STATUS.get(sqlstate)
    if mapped is None:
        return None
    status, code = mapped
    diag = error.diag
    if diag.constraint_name or diag.table_name or diag.column_name:
        return ApiError(status, code, _GENERIC_MESSAGE.get(sqlstate, "the database refused the change"))
    return ApiError(status, code, diag.message_primary or "the database refused the change")


def _unexpected(error: Exception, name: str, trace: str | None) -> ApiError:
    """Our own SQL refusals become 4xx, an unreachable database 503, anything else a bare 500."""
    # Our refusals first: psycopg files some of them (class 55) under OperationalError.
    mapped = database_rule_error(error)
    if mapped is not None:
        return mapped
    if db.is_unavailable(error):
        _logger.warning("database unavailable", extra={"fields": {"function": name, "trace": trace}})
        return unavailable("the service is briefly unavailable; retry shortly")
    _logger.error(
        "unhandled error",
        exc_info=error,
        extra={"fields": {"function": name, "trace": trace, "sqlstate": getattr(error, "sqlstate", None)}},
    )
    return ApiError(500, "internal", "internal error", {"trace_id": trace})


def endpoint(
    name: str,
    *,
    body: Any = None,
    auth: Auth = Auth.USER,
    methods: tuple[str, ...] = ("POST",),
    content_types: tuple[str, ...] = ("application/json",),
    raw_content_types: tuple[str, ...] = (),
    max_body_bytes: int | Callable[[Settings], int] | None = None,
    database_webhooks: bool = False,
) -> Callable[[Handler], Callable[[flask.Request], flask.Response]]:
    """Wrap a handler as a functions-framework HTTP function.

    `body` is a pydantic model (or an annotated union) the JSON body is parsed
    into; None hands the handler the raw request, whose type must then be one
    of `raw_content_types` when any are given. The handler returns a model, a
    JSON-able value, a flask Response, or a Reply. With `database_webhooks`, a
    request carrying X-Webhook-Secret is a Supabase Database Webhook: the secret
    must match DATABASE_WEBHOOK_SECRET, and the caller is then the service.
    """
    adapter: TypeAdapter[Any] | None = TypeAdapter(body) if body is not None else None

    def decorate(handler: Handler) -> Callable[[flask.Request], flask.Response]:
        REGISTRY[name] = EndpointInfo(name, body, auth, methods, content_types, raw_content_types, handler)

        @functools.wraps(handler)
        def wrapper(request: flask.Request) -> flask.Response:
            started = time.perf_counter()
            trace = trace_id_of(request)
            caller: Caller | None = None
            cors: dict[str, str] = {"Vary": "Origin"}
            try:
                settings = get_settings()
                log.configure(settings.log_level)
                cors = cors_headers(request, methods)
                limit = (
                    max_body_bytes(settings) if callable(max_body_bytes) else max_body_bytes or settings.max_body_bytes
                )
                raw = _read_body(request, limit)
                if request.method == "OPTIONS":
                    response = flask.Response(status=204)
                elif request.method not in methods:
                    raise ApiError(
                        405,
                        "method_not_allowed",
                        f"use {' or '.join(methods)}",
                        headers={"Allow": ", ".join(methods)},
                    )
                else:
                    caller = _authorize(request, auth, webhooks=database_webhooks)
                    parsed: Any = None
                    if adapter is not None:
                        _require_type(request, content_types)
                        parsed = parse_body(adapter, raw)
                    elif raw_content_types:
                        _require_type(request, raw_content_types)
                    result = handler(Call(body=parsed, caller=caller, request=request, trace_id=trace))
                    if isinstance(result, flask.Response):
                        response = result
                    elif isinstance(result, Reply):
                        response = _json_response(result.body, result.status, result.headers)
                    else:
                        response = _json_response(result, 200)
            except ApiError as error:
                response = _json_response(error.body(), error.status, error.headers)
                if error.status == 413:
                    response = _unread(response)
            except RequestEntityTooLarge:
                too_large = ApiError(413, "payload_too_large", "the body is too large")
                response = _unread(_json_response(too_large.body(), too_large.status))
            except ConfigError as config_error:
                # Setting names are not secret; operators need them in the log.
                logging.getLogger("threativator.config").error(str(config_error), extra={"fields": {"function": name}})
                misconfigured = ApiError(500, "misconfigured", "the service is misconfigured")
                response = _json_response(misconfigured.body(), misconfigured.status)
            except Exception as error:
                failure = _unexpected(error, name, trace)
                response = _json_response(failure.body(), failure.status, failure.headers)

            for header, value in cors.items():
                response.headers[header] = value
            # Answers carry proof, tokens and personal data: no browser, proxy or CDN keeps one.
            response.headers.setdefault("Cache-Control", "no-store")
            status = response.status_code
            _logger.log(
                logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO,
                "request",
                extra={
                    "fields": {
                        "function": name,
                        "method": request.method,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "trace": trace,
                        "caller_role": caller.role if caller else None,
                        "user_id": str(caller.user_id) if caller and caller.user_id else None,
                    }
                },
            )
            return response

        return wrapper

    return decorate
