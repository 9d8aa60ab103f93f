"""The queue and its sender: a row first, then one claimed send, at most once per row."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from shared import db
from shared.config import get_settings
from shared.errors import conflict, not_found
from shared.log import get_logger
from shared.notifications.models import (
    MUTABLE,
    SUBJECT_FIELD,
    TO_CONTACT,
    AnyNotification,
    NotificationView,
)
from shared.notifications.row import Notification
from shared.notifications.voice import Suppressed, render
from shared.providers import email as email_provider

_logger = get_logger("threativator.notifications")


# -----------------------------------------------------------------------------
# Queueing
# -----------------------------------------------------------------------------
def _view(row: Notification, created: bool) -> NotificationView:
    return NotificationView(
        id=row.id,
        type=row.type,
        status=row.status,
        dedupe_key=row.dedupe_key,
        created=created,
        provider_message_id=row.provider_message_id,
        last_error=row.last_error,
    )


def _row(conn: db.Connection, notification_id: UUID) -> Notification | None:
    return (
        conn.cursor(row_factory=Notification.row_factory())
        .execute("select * from public.notifications where id = %s", [notification_id])
        .fetchone()
    )


def queue(conn: db.Connection, request: AnyNotification) -> tuple[Notification, bool]:
    """Write the row (in the caller's transaction); returns (row, created)."""
    data = request.template_data.model_dump(mode="json")
    subject = data[SUBJECT_FIELD[request.type]]
    contact_id = data.get("contact_id") if request.type in TO_CONTACT else None
    user = conn.execute("select id, mute_reminders from public.users where id = %s", [request.user_id]).fetchone()
    if user is None:
        raise not_found("no such user")
    status = "queued"
    if contact_id is not None:
        contact = conn.execute(
            "select verified, declined_at from public.contacts where id = %s and user_id = %s",
            [contact_id, request.user_id],
        ).fetchone()
        if contact is None:
            raise not_found("no such contact for this user")
        if request.type == "witness_request" and not contact["verified"]:
            raise conflict("the witness has not confirmed their address")
        if contact["declined_at"] is not None:
            status = "suppressed"
    if request.type in MUTABLE and user["mute_reminders"]:
        status = "suppressed"
    recipient = contact_id or request.user_id
    key = request.dedupe_key or f"{request.type}:{subject}:{recipient}"
    rows = conn.cursor(row_factory=Notification.row_factory())
    row = rows.execute(
        "insert into public.notifications (type, user_id, recipient_contact_id, subject_id, dedupe_key,"
        " template_data, status) values (%s, %s, %s, %s, %s, %s, %s) on conflict (dedupe_key) do nothing"
        " returning *",
        [request.type, request.user_id, contact_id, subject, key, db.Json(data), status],
    ).fetchone()
    if row is not None:
        return row, True
    existing = rows.execute("select * from public.notifications where dedupe_key = %s", [key]).fetchone()
    assert existing is not None
    return existing, False


def request(notification: AnyNotification) -> NotificationView:
    """The send_notification function: queue once, then deliver that one row."""
    with db.as_service() as conn:
        row, created = queue(conn, notification)
    if created and row.status == "queued":
        deliver(row.id)
        with db.as_service() as conn:
            row = _row(conn, row.id) or row
    return _view(row, created)


def send_inserted(notification_id: UUID) -> NotificationView:
    """A Database Webhook reported this row's insert: send it now, once (the claim decides)."""
    deliver(notification_id)
    with db.as_service() as conn:
        row = _row(conn, notification_id)
    if row is None:
        raise not_found("no such notification")
    return _view(row, created=False)


def enqueue(notification: AnyNotification) -> None:
    """Queue for the scheduler without sending now (from other state changes)."""
    with db.as_service() as conn:
        queue(conn, notification)


# -----------------------------------------------------------------------------
# Delivery
# -----------------------------------------------------------------------------
LEASE = timedelta(minutes=2)


def _claim(notification_id: UUID) -> Notification | None:
    with db.as_service() as conn:
        return (
            conn.cursor(row_factory=Notification.row_factory())
            .execute(
                "select * from app.claim_notification(%s, %s, %s)",
                [notification_id, LEASE, get_settings().contact_invites_per_day],
            )
            .fetchone()
        )


def _finish(
    notification_id: UUID,
    status: str,
    *,
    message_id: str | None = None,
    error: str | None = None,
    retry_in: float | None = None,
) -> None:
    with db.as_service() as conn:
        conn.execute(
            "update public.notifications set status = %s, provider_message_id = coalesce(%s, provider_message_id),"
            " last_error = %s, lease_expires_at = null,"
            " sent_at = case when %s = 'sent' then now() else sent_at end,"
            " next_attempt_at = now() + make_interval(secs => %s) where id = %s",
            [status, message_id, error, status, retry_in or 0, notification_id],
        )


def deliver(notification_id: UUID, *, retry_budget_seconds: float | None = None) -> str:
    """Claim and send one row; returns its resulting status ('skipped' when someone else holds it).

    A 429/5xx is retried in-process within the budget (NOTIFICATION_RETRY_BUDGET_SECONDS by
    default; 0 never waits), then left queued with a backoff for the scheduler."""
    row = _claim(notification_id)
    if row is None:
        return "skipped"
    settings = get_settings()
    try:
        message = render(row)
    except Suppressed as why:
        _finish(row.id, "suppressed", error=str(why))
        return "suppressed"
    except email_provider.EmailRejected as rejected:
        _finish(row.id, "failed", error=str(rejected)[:500])
        return "failed"
    except Exception as error:
        if db.is_unavailable(error):
            raise  # the row's lease expires and a later pass takes it again
        # A row no renderer can read will not read better later: it fails alone, with the reason.
        _finish(row.id, "failed", error=f"could not be rendered: {type(error).__name__}")
        _logger.exception("notification unrenderable", extra={"fields": {"notification_id": str(row.id)}})
        return "failed"
    budget = settings.notification_retry_budget_seconds if retry_budget_seconds is None else retry_budget_seconds
    deadline = time.monotonic() + budget
    attempt = 0
    while True:
        attempt += 1
        try:
            sent = email_provider.send(message)
        except email_provider.EmailRejected as rejected:
            _finish(row.id, "failed", error=str(rejected)[:500])
            _logger.warning("notification rejected", extra={"fields": {"notification_id": str(row.id)}})
            return "failed"
        except email_provider.EmailRetryable as retryable:
            if retryable.maybe_sent:
                # The request may have reached SendGrid before its answer was lost, and SendGrid has no
                # idempotency key: a second copy is worse than an unconfirmed one (as for consequences).
                _finish(row.id, "sent", error=f"unconfirmed, not resent: {retryable}"[:500])
                _logger.warning("notification unconfirmed", extra={"fields": {"notification_id": str(row.id)}})
                return "sent"
            wait = retryable.retry_after or min(0.25 * 2**attempt, 4.0) * random.uniform(0.8, 1.2)  # noqa: S311
            if time.monotonic() + wait < deadline:
                time.sleep(wait)
                continue
            if row.attempts >= settings.notification_max_attempts:
                _finish(row.id, "failed", error=f"gave up after {row.attempts} attempts: {retryable}")
                _logger.error("notification gave up", extra={"fields": {"notification_id": str(row.id)}})
                return "failed"
            backoff = max(retryable.retry_after or 0, 30 * 2 ** min(row.attempts, 8))
            _finish(row.id, "queued", error=str(retryable), retry_in=backoff)
            return "queued"
        _finish(row.id, "sent", message_id=sent.message_id)
        return "sent"


def _due_ids(where: str, params: list[Any]) -> list[UUID]:
    with db.as_service() as conn:
        rows = conn.execute(
            f"select id from public.notifications where {where} order by next_attempt_at, created_at limit 100",  # noqa: S608
            params,
        ).fetchall()
    return [r["id"] for r in rows]


def send_due() -> dict[str, int]:
    """Deliver queued rows whose time has come, and rows whose sender's lease expired (the scheduler's pass)."""
    counts: dict[str, int] = {}
    for notification_id in _due_ids(
        "(status = 'queued' and next_attempt_at <= now()) or (status = 'sending' and lease_expires_at < now())", []
    ):
        outcome = _deliver_isolated(notification_id)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def send_queued_about(subject_ids: list[UUID]) -> None:
    """After a state change has committed: try its queued notices now, never waiting on a retry.

    Whatever does not go out stays queued for the scheduler's next pass; nothing here raises."""
    try:
        ids = _due_ids("subject_id = any(%s) and status = 'queued' and next_attempt_at <= now()", [subject_ids])
    except Exception:
        _logger.exception("queued notices left for the scheduler", extra={"fields": {"count": len(subject_ids)}})
        return
    for notification_id in ids:
        _deliver_isolated(notification_id, retry_budget_seconds=0)


def _deliver_isolated(notification_id: UUID, *, retry_budget_seconds: float | None = None) -> str:
    """deliver(), but a fault in one row is that row's alone: it is logged and the row waits for its lease."""
    try:
        return deliver(notification_id, retry_budget_seconds=retry_budget_seconds)
    except Exception:
        _logger.exception("notification delivery error", extra={"fields": {"notification_id": str(notification_id)}})
        return "error"


def queue_reminders(now: datetime | None = None) -> int:
    with db.as_service() as conn:
        row = conn.execute("select app.queue_reminders(%s) as n", [now or datetime.now(UTC)]).fetchone()
    return int(row["n"]) if row else 0
