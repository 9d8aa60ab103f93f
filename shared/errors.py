"""The one error type every function answers with: {"error": {code, message, details}}."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the client is meant to see. The message must not carry secrets or content."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def bad_request(message: str, details: Any = None, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message, details)


def unauthorized(message: str = "a valid bearer token is required") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str, details: Any = None) -> ApiError:
    return ApiError(409, "conflict", message, details)


def unavailable(message: str, retry_after_seconds: int = 5) -> ApiError:
    return ApiError(503, "unavailable", message, headers={"Retry-After": str(retry_after_seconds)})


# Control characters other than tab, line feed and carriage return: NUL cannot be stored in a
# PostgreSQL text column at all, and the others have no place in a name, comment or description.
_CONTROL = frozenset(chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F))


def control_character_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (key or value) holding a control character, or None."""
    if isinstance(value, str):
        return (path or "body") if not _CONTROL.isdisjoint(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if not _CONTROL.isdisjoint(str(key)):
                return path or "body"
            found = control_character_path(item, child)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = control_character_path(item, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


def refuse_control_characters(value: Any, field: str = "") -> None:
    """400 `invalid_characters`, naming the field, when text holds NUL or another control character."""
    found = control_character_path(value, field)
    if found is not None:
        raise bad_request(
            f"{found} contains a control character",
            [{"field": found, "message": "control characters are not allowed", "type": "invalid_characters"}],
            code="invalid_characters",
        )
