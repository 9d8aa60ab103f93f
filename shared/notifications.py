"""Every email the product sends: written as a row first, then sent at most once.

A notification is unique by its dedupe key (given, or type:subject:recipient).
Asking again answers with the existing row and sends nothing. A row is claimed
(queued -> sending, with a lease) before its one send; the outcome is sent
(with SendGrid's message id), failed (a 4xx, with the reason), or back to
queued with a backoff for the scheduler's next run (429, 5xx, timeouts).
"""

from __future__ import annotations

import html
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field

from shared import charities, db, links
from shared.config import get_settings
from shared.errors import conflict, not_found
from shared.log import get_logger
from shared.providers import email as email_provider

_logger = get_logger("threativator.notifications")

Emotion = Literal["stern", "disappointed", "grudging_approval", "menacing"]
DedupeKey = Annotated[str, Field(min_length=1, max_length=300)]


# -----------------------------------------------------------------------------
# Requests: one template_data model per type.
# -----------------------------------------------------------------------------
# Rows hold the type, the ids and the facts of the event; the wording (titles, names,
# amounts) is read from the database when the row is sent. The optional text fields are
# used only when the subject is not in the database (a service caller's own notice).
class DeadlineReminderData(BaseModel):
    checkpoint_id: UUID
    window: Literal["3d", "1d", "1h"]
    goal_title: str | None = Field(default=None, max_length=200)
    checkpoint_title: str | None = Field(default=None, max_length=200)
    deadline: datetime | None = None
    is_final: bool | None = None


class SubmissionResultData(BaseModel):
    submission_id: UUID
    goal_title: str | None = Field(default=None, max_length=200)
    checkpoint_title: str | None = Field(default=None, max_length=200)
    outcome: Literal["passed", "failed", "needs_review", "awaiting_witness"]
    feedback: str | None = Field(default=None, max_length=2000)


class WitnessRequestData(BaseModel):
    submission_id: UUID
    request_id: UUID
    contact_id: UUID
    goal_title: str | None = Field(default=None, max_length=200)
    checkpoint_title: str | None = Field(default=None, max_length=200)
    owner_name: str | None = Field(default=None, max_length=100)


class ContactVerificationData(BaseModel):
    contact_id: UUID


class ConsequenceNotificationData(BaseModel):
    consequence_id: UUID
    goal_title: str | None = Field(default=None, max_length=200)
    kind: Literal["monetary", "humiliation"] | None = None
    outcome: Literal["executed", "failed", "insufficient_funds"] = "executed"
    amount_cents: int | None = Field(default=None, ge=0)
    charity: str | None = Field(default=None, max_length=100)


class SparedData(BaseModel):
    checkpoint_id: UUID
    goal_title: str | None = Field(default=None, max_length=200)
    checkpoint_title: str | None = Field(default=None, max_length=200)


class StakeReleasedData(BaseModel):
    goal_id: UUID
    goal_title: str | None = Field(default=None, max_length=200)
    amount_cents: int = Field(ge=0)


class _Base(BaseModel):
    user_id: UUID
    dedupe_key: DedupeKey | None = None


class DeadlineReminder(_Base):
    type: Literal["deadline_reminder"]
    template_data: DeadlineReminderData


class SubmissionResult(_Base):
    type: Literal["submission_result"]
    template_data: SubmissionResultData


class WitnessRequest(_Base):
    type: Literal["witness_request"]
    template_data: WitnessRequestData


class ContactVerification(_Base):
    type: Literal["contact_verification"]
    template_data: ContactVerificationData


class ConsequenceNotification(_Base):
    type: Literal["consequence_notification"]
    template_data: ConsequenceNotificationData


class Spared(_Base):
    type: Literal["spared"]
    template_data: SparedData


class StakeReleased(_Base):
    type: Literal["stake_released"]
    template_data: StakeReleasedData


AnyNotification = (
    DeadlineReminder
    | SubmissionResult
    | WitnessRequest
    | ContactVerification
    | ConsequenceNotification
    | Spared
    | StakeReleased
)
NotificationRequest = Annotated[AnyNotification, Field(discriminator="type")]

_SUBJECT_FIELD = {
    "deadline_reminder": "checkpoint_id",
    "submission_result": "submission_id",
    "witness_request": "request_id",
    "contact_verification": "contact_id",
    "consequence_notification": "consequence_id",
    "spared": "checkpoint_id",
    "stake_released": "goal_id",
}
_DATA_MODEL: dict[str, type[BaseModel]] = {
    "deadline_reminder": DeadlineReminderData,
    "submission_result": SubmissionResultData,
    "witness_request": WitnessRequestData,
    "contact_verification": ContactVerificationData,
    "consequence_notification": ConsequenceNotificationData,
    "spared": SparedData,
    "stake_released": StakeReleasedData,
}
# Reminders can be muted; notices about consequences and money cannot.
_MUTABLE = frozenset({"deadline_reminder"})
_TO_CONTACT = frozenset({"witness_request", "contact_verification"})


class NotificationView(BaseModel):
    id: UUID
    type: str
    status: str
    dedupe_key: str
    created: bool
    provider_message_id: str | None = None
    last_error: str | None = None


# -----------------------------------------------------------------------------
# Queueing
# -----------------------------------------------------------------------------
def _view(row: dict[str, Any], created: bool) -> NotificationView:
    return NotificationView(
        id=row["id"],
        type=str(row["type"]),
        status=str(row["status"]),
        dedupe_key=row["dedupe_key"],
        created=created,
        provider_message_id=row.get("provider_message_id"),
        last_error=row.get("last_error"),
    )


def queue(conn: db.Connection, request: AnyNotification) -> tuple[dict[str, Any], bool]:
    """Write the row (in the caller's transaction); returns (row, created)."""
    data = request.template_data.model_dump(mode="json")
    subject = data[_SUBJECT_FIELD[request.type]]
    contact_id = data.get("contact_id") if request.type in _TO_CONTACT else None
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
    if request.type in _MUTABLE and user["mute_reminders"]:
        status = "suppressed"
    recipient = contact_id or request.user_id
    key = request.dedupe_key or f"{request.type}:{subject}:{recipient}"
    row = conn.execute(
        "insert into public.notifications (type, user_id, recipient_contact_id, subject_id, dedupe_key,"
        " template_data, status) values (%s, %s, %s, %s, %s, %s, %s) on conflict (dedupe_key) do nothing"
        " returning *",
        [request.type, request.user_id, contact_id, subject, key, db.Json(data), status],
    ).fetchone()
    if row is not None:
        return row, True
    existing = conn.execute("select * from public.notifications where dedupe_key = %s", [key]).fetchone()
    assert existing is not None
    return existing, False


def request(notification: AnyNotification) -> NotificationView:
    """The send_notification function: queue once, then deliver that one row."""
    with db.as_service() as conn:
        row, created = queue(conn, notification)
    if created and row["status"] == "queued":
        deliver(row["id"])
        with db.as_service() as conn:
            row = conn.execute("select * from public.notifications where id = %s", [row["id"]]).fetchone() or row
    return _view(row, created)


def enqueue(notification: AnyNotification) -> None:
    """Queue for the scheduler without sending now (from other state changes)."""
    with db.as_service() as conn:
        queue(conn, notification)


# -----------------------------------------------------------------------------
# Delivery
# -----------------------------------------------------------------------------
LEASE = timedelta(minutes=2)


def _claim(notification_id: UUID) -> dict[str, Any] | None:
    with db.as_service() as conn:
        row: dict[str, Any] | None = conn.execute(
            "update public.notifications set status = 'sending', attempts = attempts + 1,"
            " lease_expires_at = now() + %s where id = %s and ((status = 'queued' and next_attempt_at <= now())"
            " or (status = 'sending' and lease_expires_at < now())) returning *",
            [LEASE, notification_id],
        ).fetchone()
    return row


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
    except _Suppressed as why:
        _finish(row["id"], "suppressed", error=str(why))
        return "suppressed"
    except Exception as error:
        if db.is_unavailable(error):
            raise  # the row's lease expires and a later pass takes it again
        # A row no renderer can read will not read better later: it fails alone, with the reason.
        _finish(row["id"], "failed", error=f"could not be rendered: {type(error).__name__}")
        _logger.exception("notification unrenderable", extra={"fields": {"notification_id": str(row["id"])}})
        return "failed"
    budget = settings.notification_retry_budget_seconds if retry_budget_seconds is None else retry_budget_seconds
    deadline = time.monotonic() + budget
    attempt = 0
    while True:
        attempt += 1
        try:
            sent = email_provider.send(message)
        except email_provider.EmailRejected as rejected:
            _finish(row["id"], "failed", error=str(rejected)[:500])
            _logger.warning("notification rejected", extra={"fields": {"notification_id": str(row["id"])}})
            return "failed"
        except email_provider.EmailRetryable as retryable:
            wait = retryable.retry_after or min(0.25 * 2**attempt, 4.0) * random.uniform(0.8, 1.2)  # noqa: S311
            if time.monotonic() + wait < deadline:
                time.sleep(wait)
                continue
            if row["attempts"] >= settings.notification_max_attempts:
                _finish(row["id"], "failed", error=f"gave up after {row['attempts']} attempts: {retryable}")
                _logger.error("notification gave up", extra={"fields": {"notification_id": str(row["id"])}})
                return "failed"
            backoff = max(retryable.retry_after or 0, 30 * 2 ** min(row["attempts"], 8))
            _finish(row["id"], "queued", error=str(retryable), retry_in=backoff)
            return "queued"
        _finish(row["id"], "sent", message_id=sent.message_id)
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


# -----------------------------------------------------------------------------
# Rendering: the product's voice. Humiliation notices stay vague on purpose.
# -----------------------------------------------------------------------------
class _Suppressed(Exception):
    pass


def _money(cents: int | None) -> str:
    return f"${(cents or 0) / 100:,.2f}"


def _when(deadline: datetime, zone_name: str) -> str:
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone, zone_name = ZoneInfo("UTC"), "UTC"
    local = deadline.astimezone(zone)
    return f"{local:%A %d %B at %H:%M} ({zone_name})"


_WINDOW_WORDS = {"3d": "three days", "1d": "one day", "1h": "one hour"}


def _content(
    kind: str, data: dict[str, Any], user: dict[str, Any], links_: dict[str, str]
) -> tuple[str, Emotion, list[str]]:
    """(subject, emotion, paragraphs) for one notification."""
    goal = data.get("goal_title", "your goal")
    if kind == "deadline_reminder":
        when = _when(datetime.fromisoformat(data["deadline"]), user["time_zone"])
        what = "your final deadline" if data.get("is_final") else f"“{data['checkpoint_title']}”"
        return (
            f"{_WINDOW_WORDS[data['window']].capitalize()} left: {data['checkpoint_title']}",
            "stern",
            [
                f"You have {_WINDOW_WORDS[data['window']]} until {what} on “{goal}” is due: {when}.",
                "Submit your proof before then. The clock does not negotiate.",
                f"Stop these reminders: {links_['unsubscribe']}",
            ],
        )
    if kind == "submission_result":
        outcome = data["outcome"]
        feedback = [f"The grader said: {data['feedback']}"] if data.get("feedback") else []
        if outcome == "passed":
            return (
                f"Accepted: {data['checkpoint_title']}",
                "grudging_approval",
                [f"Your proof for “{data['checkpoint_title']}” on “{goal}” passed. Fine. Keep going.", *feedback],
            )
        if outcome == "failed":
            return (
                f"Not accepted: {data['checkpoint_title']}",
                "disappointed",
                [
                    f"Your proof for “{data['checkpoint_title']}” on “{goal}” did not pass.",
                    *feedback,
                    "You may submit again before the deadline.",
                ],
            )
        if outcome == "awaiting_witness":
            return (
                f"Waiting for your witness: {data['checkpoint_title']}",
                "stern",
                [f"Your proof for “{data['checkpoint_title']}” went to your witness for a verdict."],
            )
        return (
            f"Needs review: {data['checkpoint_title']}",
            "stern",
            [
                f"Your proof for “{data['checkpoint_title']}” could not be judged with confidence.",
                *feedback,
                "Submit clearer proof before the deadline.",
            ],
        )
    if kind == "witness_request":
        return (
            f"{data['owner_name']} needs your verdict",
            "stern",
            [
                f"{data['owner_name']} named you as the witness for “{goal}” and has submitted proof for "
                f"“{data['checkpoint_title']}”.",
                f"If the proof meets the goal, say so: {links_['pass']}",
                f"If it does not, say that: {links_['fail']}",
                "Each link works once. Your verdict is final.",
            ],
        )
    if kind == "contact_verification":
        return (
            "Confirm your address for Threativator",
            "stern",
            [
                f"{user['display_name'] or 'A Threativator user'} added you as a contact. "
                "If you agree to be contacted about their goals, confirm:",
                links_["confirm"],
                f"If you do not, decline and you will hear nothing more: {links_['decline']}",
            ],
        )
    if kind == "consequence_notification":
        if data["kind"] == "monetary":
            if data.get("outcome") == "failed":
                return (
                    "A consequence could not be paid",
                    "disappointed",
                    [
                        f"A missed deadline on “{goal}” owed {_money(data.get('amount_cents'))} to "
                        f"{data.get('charity') or 'charity'}, and the payment could not be made.",
                    ],
                )
            if data.get("outcome") == "insufficient_funds":
                return (
                    "A consequence could not be paid",
                    "disappointed",
                    [
                        f"A missed deadline on “{goal}” owed {_money(data.get('amount_cents'))} to "
                        f"{data.get('charity') or 'charity'}, but your holding cell did not hold enough.",
                    ],
                )
            return (
                f"{_money(data.get('amount_cents'))} went to charity",
                "menacing",
                [
                    f"You missed a deadline on “{goal}”. {_money(data.get('amount_cents'))} of your stake went to "
                    f"{data.get('charity') or 'charity'}.",
                ],
            )
        return (
            "A consequence was carried out",
            "menacing",
            [
                f"You missed a deadline on “{goal}”. A consequence was carried out. We will not say more.",
            ],
        )
    if kind == "spared":
        return (
            f"Spared, this time: {data['checkpoint_title']}",
            "grudging_approval",
            [
                f"You missed “{data['checkpoint_title']}” on “{goal}”. The roulette spun, and it spared you.",
                "It will not always.",
            ],
        )
    return (
        f"Your stake is yours again: {goal}",
        "grudging_approval",
        [
            f"You finished “{goal}”. {_money(data.get('amount_cents'))} is back in your holding cell.",
        ],
    )


def _recipient_and_links(conn: db.Connection, row: dict[str, Any]) -> tuple[str, dict[str, str]]:
    kind, data = str(row["type"]), row["template_data"]
    if kind in _TO_CONTACT:
        contact = conn.execute(
            "select id, email, verified, declined_at from public.contacts where id = %s", [row["recipient_contact_id"]]
        ).fetchone()
        if contact is None or contact["declined_at"] is not None:
            raise _Suppressed("the contact declined or was removed")
        if kind == "witness_request":
            if not contact["verified"]:
                raise _Suppressed("the witness has not confirmed their address")
            return contact["email"], links.witness_links(UUID(data["submission_id"]), UUID(data["request_id"]))
        token = links.new_verification_token()
        ttl = timedelta(hours=get_settings().contact_verification_ttl_hours)
        conn.execute(
            "update public.contacts set verification_token_hash = %s,"
            " verification_expires_at = now() + %s where id = %s",
            [links.sha256_hex(token), ttl, contact["id"]],
        )
        return contact["email"], links.contact_links(token)
    user = conn.execute("select email from public.users where id = %s", [row["user_id"]]).fetchone()
    if user is None:
        raise _Suppressed("the user no longer exists")
    extra: dict[str, str] = {}
    if kind == "deadline_reminder":
        token = links.unsubscribe_token(row["user_id"])
        conn.execute(
            "update public.users set unsubscribe_token_hash = %s where id = %s"
            " and unsubscribe_token_hash is distinct from %s",
            [links.sha256_hex(token), row["user_id"], links.sha256_hex(token)],
        )
        extra["unsubscribe"] = links.unsubscribe_link(token)
    return str(user["email"]), extra


# What each kind of notice reads from the database at send time, by the id its row holds.
_CONTEXT = {
    "deadline_reminder": (
        "checkpoint_id",
        "select g.title as goal_title, cp.title as checkpoint_title, cp.deadline, cp.is_final"
        " from public.checkpoints cp join public.goals g on g.id = cp.goal_id where cp.id = %s",
    ),
    "spared": (
        "checkpoint_id",
        "select g.title as goal_title, cp.title as checkpoint_title"
        " from public.checkpoints cp join public.goals g on g.id = cp.goal_id where cp.id = %s",
    ),
    "submission_result": (
        "submission_id",
        "select g.title as goal_title, cp.title as checkpoint_title, s.ai_analysis_result as result,"
        " s.human_verdict, s.vouched_by,"
        " (select w.comment from public.witness_requests w where w.submission_id = s.id) as comment"
        " from public.submissions s join public.checkpoints cp on cp.id = s.checkpoint_id"
        " join public.goals g on g.id = cp.goal_id where s.id = %s",
    ),
    "witness_request": (
        "submission_id",
        "select g.title as goal_title, cp.title as checkpoint_title,"
        " coalesce(u.display_name, split_part(u.email, '@', 1)) as owner_name"
        " from public.submissions s join public.checkpoints cp on cp.id = s.checkpoint_id"
        " join public.goals g on g.id = cp.goal_id join public.users u on u.id = s.user_id where s.id = %s",
    ),
    "consequence_notification": (
        "consequence_id",
        "select g.title as goal_title, c.consequence_type::text as consequence_type,"
        " (c.monetary_amount * 100)::bigint as amount_cents, c.charity_destination::text as charity_id"
        " from public.consequences c join public.goals g on g.id = c.goal_id where c.id = %s",
    ),
    "stake_released": ("goal_id", "select g.title as goal_title from public.goals g where g.id = %s"),
}


_WORDING = ("goal_title", "checkpoint_title", "owner_name")
_PLAIN = {
    "goal_title": "your goal",
    "checkpoint_title": "your checkpoint",
    "owner_name": "A Threativator user",
    "kind": "humiliation",
}


def _feedback(found: dict[str, Any]) -> str | None:
    if found.get("vouched_by") is not None:
        return "Another Threativator user vouched for your proof."
    if found.get("human_verdict") is not None:
        return found.get("comment")
    result = found.get("result") or {}
    feedback = result.get("feedback") or result.get("reason")
    return str(feedback)[:2000] if feedback else None


def _with_context(conn: db.Connection, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The row's data with the current wording from the database filled in."""
    if kind not in _CONTEXT:
        return data
    id_field, query = _CONTEXT[kind]
    found = conn.execute(query, [data[id_field]]).fetchone()
    if found is None:
        # A service caller's notice about something we do not hold: its own words, or plain ones.
        if kind == "deadline_reminder" and not data.get("deadline"):
            raise _Suppressed("the checkpoint no longer exists")
        return {**_PLAIN, **{k: v for k, v in data.items() if v is not None}}
    merged = {**data, **{k: found[k] for k in _WORDING if found.get(k) is not None}}
    if kind == "deadline_reminder":
        merged["deadline"] = found["deadline"].isoformat()
        merged["is_final"] = found["is_final"]
    if kind == "submission_result" and not data.get("feedback"):
        merged["feedback"] = _feedback(found)
    if kind == "consequence_notification":
        monetary = found["consequence_type"] == "monetary"
        merged["kind"] = "monetary" if monetary else "humiliation"
        merged["amount_cents"] = found["amount_cents"] if monetary else None
        merged["charity"] = charities.display_name(found["charity_id"]) if monetary else None
    return merged


def render(row: dict[str, Any]) -> email_provider.Email:
    settings = get_settings()
    kind = str(row["type"])
    data = _DATA_MODEL[kind].model_validate(row["template_data"]).model_dump(mode="json")
    with db.as_service() as conn:
        data = _with_context(conn, kind, data)
        to, links_ = _recipient_and_links(conn, row)
        user = conn.execute(
            "select display_name, time_zone from public.users where id = %s", [row["user_id"]]
        ).fetchone() or {"display_name": None, "time_zone": "UTC"}
    subject, emotion, paragraphs = _content(kind, data, user, links_)
    avatar = f"{settings.avatar_base_url}/{emotion}.png"
    text = "\n\n".join(paragraphs) + "\n\n— Threativator\n"
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    page = f'<img src="{html.escape(avatar)}" alt="" width="96" height="96">{body}<p>— Threativator</p>'
    template_id = settings.sendgrid_template_ids.get(kind)
    return email_provider.Email(
        to=[to],
        subject=subject,
        text=text,
        html=page,
        template_id=template_id,
        dynamic_data={
            "subject": subject,
            "paragraphs": paragraphs,
            "emotion": emotion,
            "avatar_url": avatar,
            "links": links_,
            **data,
        }
        if template_id
        else None,
        custom_args={"notification_id": str(row["id"]), "type": kind},
    )
