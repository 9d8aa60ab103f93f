"""The claim/finish protocol: claim (with a lease), carry out, finish exactly once."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel

from shared import db
from shared.commitments.engine import humiliation, payout
from shared.commitments.engine.row import Consequence
from shared.config import ConfigError, get_settings
from shared.errors import ApiError, not_found
from shared.log import get_logger
from shared.providers.errors import ProviderRefused, ProviderUnavailable

_logger = get_logger("threativator.engine")


class TriggerRequest(BaseModel):
    consequence_id: UUID


class ExecutionResult(BaseModel):
    consequence_id: UUID
    execution_status: Literal["pending", "executing", "completed", "failed"]
    outcome: Literal["executed", "already_done", "retry_scheduled", "failed"]
    attempts: int
    provider_reference: str | None = None
    last_error: str | None = None


def executor_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _result(row: Consequence, outcome: str) -> ExecutionResult:
    return ExecutionResult.model_validate(
        {
            "consequence_id": row.id,
            "execution_status": row.execution_status,
            "outcome": outcome,
            "attempts": row.attempts,
            "provider_reference": row.provider_reference,
            "last_error": row.last_error,
        }
    )


def execute(consequence_id: UUID, owner: str | None = None) -> ExecutionResult:
    """Claim and carry out one consequence; safe to call any number of times."""
    owner = owner or executor_id()
    settings = get_settings()
    with db.as_service() as conn:
        cursor = conn.cursor(row_factory=Consequence.row_factory())
        row = cursor.execute(
            "select * from app.claim_consequence(%s, %s, %s)",
            [consequence_id, owner, settings.consequence_lease_seconds],
        ).fetchone()
        if row is None:
            current = cursor.execute("select * from public.consequences where id = %s", [consequence_id]).fetchone()
    if row is None:
        if current is None:
            raise not_found("no such consequence")
        if current.execution_status in ("completed", "failed"):
            return _result(current, "already_done")
        details = {"execution_status": current.execution_status, "next_attempt_at": current.next_attempt_at.isoformat()}
        if current.deferred_reason and current.execution_status == "pending":
            details["deferred_reason"] = current.deferred_reason
        raise ApiError(
            409,
            "in_progress",
            "this consequence is being executed or is waiting for its retry time",
            details,
        )
    log_fields = {
        "consequence_id": str(consequence_id),
        "type": row.consequence_type,
        "attempt": row.attempts,
    }
    try:
        reference = _carry_out(row, owner)
    except ProviderRefused as why:
        finished = _finish(row, owner, "failed", error=str(why))
        _logger.warning("consequence failed", extra={"fields": {**log_fields, "reason": str(why)}})
        return _result(finished, "failed")
    except (ProviderUnavailable, ConfigError) as why:
        return _retry(row, owner, str(why), log_fields)
    except Exception as unexpected:
        # Anything unforeseen is retried with backoff rather than lost; the operators see it.
        _logger.exception("consequence execution error", extra={"fields": log_fields})
        return _retry(row, owner, f"internal: {type(unexpected).__name__}", log_fields)
    finished = _finish(row, owner, "completed", provider_reference=reference)
    _logger.info("consequence completed", extra={"fields": log_fields})
    return _result(finished, "executed")


def _retry(row: Consequence, owner: str, error: str, log_fields: dict[str, Any]) -> ExecutionResult:
    settings = get_settings()
    if row.attempts >= settings.consequence_max_attempts:
        finished = _finish(row, owner, "failed", error=f"gave up after {row.attempts} attempts: {error}")
        _logger.error("consequence gave up", extra={"fields": {**log_fields, "reason": error}})
        return _result(finished, "failed")
    backoff = settings.consequence_backoff_base_seconds * 2 ** min(row.attempts - 1, 10)
    finished = _finish(row, owner, "retry", error=error, retry_in=backoff)
    _logger.warning("consequence will be retried", extra={"fields": {**log_fields, "reason": error}})
    return _result(finished, "retry_scheduled")


def _finish(
    row: Consequence,
    owner: str,
    outcome: str,
    *,
    error: str | None = None,
    retry_in: int | None = None,
    provider_reference: str | None = None,
) -> Consequence:
    with db.as_service() as conn:
        if outcome == "completed" and row.consequence_type == "monetary" and provider_reference:
            payout.book(conn, row, owner, provider_reference)  # the forfeit commits with the completion
        finished = (
            conn.cursor(row_factory=Consequence.row_factory())
            .execute(
                "select * from app.finish_consequence(%s, %s, %s, %s, %s, %s)",
                [row.id, owner, outcome, error, retry_in, provider_reference],
            )
            .fetchone()
        )
    if finished is None:
        raise RuntimeError("finish_consequence returned no row")
    return finished


def _carry_out(row: Consequence, owner: str) -> str | None:
    if row.consequence_type == "monetary":
        return payout.transfer(row, owner)
    if row.consequence_type == "humiliation_email":
        return humiliation.by_email(row)
    return humiliation.on_x(row)
