"""The product's voice: each notice's subject, emotion and paragraphs, rendered when it is sent.

Wording is read from the database by the ids the row holds. Humiliation notices stay vague on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared import charities, db, links
from shared.config import get_settings
from shared.notifications import html
from shared.notifications.models import (
    DATA_MODEL,
    TO_CONTACT,
    ConsequenceNotificationData,
    ContactVerificationData,
    DeadlineReminderData,
    GoalChangedData,
    KompromatExpiredData,
    SparedData,
    StakeReleasedData,
    SubmissionResultData,
    WitnessRequestData,
)
from shared.notifications.row import Notification
from shared.providers import email as email_provider

Emotion = Literal["stern", "disappointed", "grudging_approval", "menacing"]


# -----------------------------------------------------------------------------
# Rendering: the product's voice. Humiliation notices stay vague on purpose.
# -----------------------------------------------------------------------------
class Suppressed(Exception):
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


Rendered = tuple[str, Emotion, list[str]]  # (subject, emotion, paragraphs)


@dataclass(frozen=True)
class Reader:
    """Who reads the notice: the display name and time zone it is worded for, and its links."""

    display_name: str | None
    time_zone: str
    links: dict[str, str]


def _goal(data: Any) -> str:
    return data.goal_title or "your goal"


def _deadline_reminder(data: DeadlineReminderData, reader: Reader) -> Rendered:
    if data.deadline is None:
        raise Suppressed("the checkpoint no longer exists")
    checkpoint = data.checkpoint_title or "your checkpoint"
    words = _WINDOW_WORDS[data.window]
    what = "your final deadline" if data.is_final else f"“{checkpoint}”"
    return (
        f"{words.capitalize()} left: {checkpoint}",
        "stern",
        [
            f"You have {words} until {what} on “{_goal(data)}” is due: {_when(data.deadline, reader.time_zone)}.",
            "Submit your proof before then. The clock does not negotiate.",
            *(
                [f"Your proof must show this checkpoint's phrase: “{data.proof_phrase}”. Proof without it fails."]
                if data.proof_phrase
                else []
            ),
            f"Stop these reminders: {reader.links['unsubscribe']}",
        ],
    )


def _submission_result(data: SubmissionResultData, reader: Reader) -> Rendered:
    checkpoint, goal = data.checkpoint_title or "your checkpoint", _goal(data)
    feedback = [f"The grader said: {data.feedback}"] if data.feedback else []
    if data.outcome == "passed":
        return (
            f"Accepted: {checkpoint}",
            "grudging_approval",
            [f"Your proof for “{checkpoint}” on “{goal}” passed. Fine. Keep going.", *feedback],
        )
    if data.outcome == "failed":
        return (
            f"Not accepted: {checkpoint}",
            "disappointed",
            [
                f"Your proof for “{checkpoint}” on “{goal}” did not pass.",
                *feedback,
                "You may submit again before the deadline.",
            ],
        )
    if data.outcome == "witness_silent":
        return (
            f"Your witness did not answer: {checkpoint}",
            "stern",
            [
                f"Your witness did not give a verdict on your proof for “{checkpoint}” on “{goal}” in time.",
                "The proof you submitted goes to the grader instead, and to a person if the grader is unsure.",
                "Nothing is charged while it waits for a verdict.",
            ],
        )
    if data.outcome == "awaiting_witness":
        return (
            f"Waiting for your witness: {checkpoint}",
            "stern",
            [f"Your proof for “{checkpoint}” went to your witness for a verdict."],
        )
    return (
        f"Needs review: {checkpoint}",
        "stern",
        [
            f"Your proof for “{checkpoint}” could not be judged with confidence.",
            *feedback,
            "Submit clearer proof before the deadline.",
        ],
    )


def _witness_request(data: WitnessRequestData, reader: Reader) -> Rendered:
    owner = data.owner_name or "A Threativator user"
    if data.replaced:
        return (
            f"Your verdict for {owner} is no longer needed",
            "stern",
            [
                f"You were asked for a verdict on {owner}'s proof for “{_goal(data)}”, and no answer came in time.",
                "The proof has gone to another reviewer. The links in the earlier email no longer work.",
            ],
        )
    return (
        f"{owner} needs your verdict",
        "stern",
        [
            f"{owner} named you as the witness for “{_goal(data)}” and has submitted proof for "
            f"“{data.checkpoint_title or 'a checkpoint'}”.",
            *(
                [f"The proof must show this phrase, chosen by us when the checkpoint opened: “{data.proof_phrase}”."]
                if data.proof_phrase
                else []
            ),
            f"If the proof meets the goal, say so: {reader.links['pass']}",
            f"If it does not, say that: {reader.links['fail']}",
            "Either link first shows you the proof exactly as it was submitted; nothing is recorded until you"
            " confirm there. Each link works once. Your verdict is final.",
        ],
    )


def _contact_verification(data: ContactVerificationData, reader: Reader) -> Rendered:
    return (
        "Confirm your address for Threativator",
        "stern",
        [
            f"{reader.display_name or 'A Threativator user'} added you as a contact. "
            "If you agree to be contacted about their goals, confirm:",
            reader.links["confirm"],
            f"If you do not, decline and you will hear nothing more: {reader.links['decline']}",
        ],
    )


def _consequence_notification(data: ConsequenceNotificationData, reader: Reader) -> Rendered:
    goal = _goal(data)
    if data.outcome == "held":
        when = _when(data.execute_after, reader.time_zone) if data.execute_after else "soon"
        what = (
            f"{_money(data.amount_cents)} of your stake goes to {data.charity or 'charity'}"
            if data.kind == "monetary"
            else "the kompromat you chose is sent as your goal's terms say"
        )
        return (
            f"A consequence is coming on {when}",
            "menacing",
            [
                f"You missed a deadline on “{goal}”. On {when}, {what}.",
                "If this is wrong (you met the deadline, or our service failed you), contest it in the "
                "app before then, saying why. A person will look at it before anything happens.",
            ],
        )
    if data.outcome == "canceled":
        return (
            "Your contest was upheld: the consequence is canceled",
            "grudging_approval",
            [
                f"An operator reviewed your contest of the consequence for “{goal}” and canceled it. "
                "Nothing will be carried out, and any stake it held is back in your holding cell.",
            ],
        )
    if data.outcome == "contest_upheld":
        return (
            "Your contest was reviewed: the consequence stands",
            "stern",
            [
                f"An operator reviewed your contest of the consequence for “{goal}” and decided it stands. "
                "It will be carried out now.",
            ],
        )
    if data.outcome == "moved_to_email":
        return (
            "X refused the post; your targets were emailed instead",
            "stern",
            [
                f"You missed a deadline on “{goal}”. X no longer lets us post on your account, so the "
                "consequence went to your consequence targets by email instead, as your goal's terms say.",
            ],
        )
    if data.kind != "monetary":
        return (
            "A consequence was carried out",
            "menacing",
            [f"You missed a deadline on “{goal}”. A consequence was carried out. We will not say more."],
        )
    owed = f"A missed deadline on “{goal}” owed {_money(data.amount_cents)} to {data.charity or 'charity'}"
    if data.outcome == "failed":
        return ("A consequence could not be paid", "disappointed", [f"{owed}, and the payment could not be made."])
    if data.outcome == "insufficient_funds":
        return (
            "A consequence could not be paid",
            "disappointed",
            [f"{owed}, but your holding cell did not hold enough."],
        )
    return (
        f"{_money(data.amount_cents)} went to charity",
        "menacing",
        [
            f"You missed a deadline on “{goal}”. {_money(data.amount_cents)} of your stake went to "
            f"{data.charity or 'charity'}.",
        ],
    )


def _spared(data: SparedData, reader: Reader) -> Rendered:
    checkpoint = data.checkpoint_title or "your checkpoint"
    return (
        f"Spared, this time: {checkpoint}",
        "grudging_approval",
        [
            f"You missed “{checkpoint}” on “{_goal(data)}”. The roulette spun, and it spared you.",
            "It will not always.",
        ],
    )


def _stake_released(data: StakeReleasedData, reader: Reader) -> Rendered:
    goal = _goal(data)
    return (
        f"Your stake is yours again: {goal}",
        "grudging_approval",
        [f"You finished “{goal}”. {_money(data.amount_cents)} is back in your holding cell."],
    )


_CHANGE_WORDS = {
    "pause": "pause it",
    "extend_deadline": "move a deadline later",
    "lower_stake": "lower the stake",
    "remove_checkpoint": "remove a checkpoint",
    "cancel_goal": "cancel it",
    "raise_stake": "raise the stake",
    "add_checkpoint": "add a checkpoint",
    "earlier_deadline": "move a deadline earlier",
}


def _goal_changed(data: GoalChangedData, reader: Reader) -> Rendered:
    goal, what = _goal(data), _CHANGE_WORDS.get(data.change_type or "", "change it")
    if data.outcome == "scheduled":
        when = _when(data.effective_at, reader.time_zone) if data.effective_at else "after the notice period"
        return (
            f"Change requested: {goal}",
            "stern",
            [
                f"You asked to {what} for “{goal}”. It takes effect {when}, after the notice period.",
                "Every deadline before then stays due, exactly as it is. You can withdraw the request until then.",
            ],
        )
    if data.outcome == "lapsed":
        return (
            f"Change not applied: {goal}",
            "disappointed",
            [f"Your request to {what} for “{goal}” could not take effect: {data.reason or 'it no longer applied'}."],
        )
    return (f"Change in effect: {goal}", "stern", [f"Your request to {what} for “{goal}” is now in effect."])


def _kompromat_expired(data: KompromatExpiredData, reader: Reader) -> Rendered:
    return (
        "Your kompromat is destroyed",
        "grudging_approval",
        [
            "No goal and no consequence needs the material you gave us any more, so it is destroyed, "
            f"{data.retention_days} days after it was last needed. We keep nothing longer than we need it.",
        ],
    )


# One renderer per type, each over its own typed model.
RENDERERS: dict[str, Callable[[Any, Reader], Rendered]] = {
    "deadline_reminder": _deadline_reminder,
    "submission_result": _submission_result,
    "witness_request": _witness_request,
    "contact_verification": _contact_verification,
    "consequence_notification": _consequence_notification,
    "spared": _spared,
    "stake_released": _stake_released,
    "goal_changed": _goal_changed,
    "kompromat_expired": _kompromat_expired,
}


def _recipient_and_links(conn: db.Connection, row: Notification) -> tuple[str, dict[str, str]]:
    kind, data = row.type, row.template_data
    if kind in TO_CONTACT:
        contact = conn.execute(
            "select id, email, verified, declined_at from public.contacts where id = %s", [row.recipient_contact_id]
        ).fetchone()
        if contact is None or contact["declined_at"] is not None:
            raise Suppressed("the contact declined or was removed")
        if kind == "witness_request":
            if not contact["verified"]:
                raise Suppressed("the witness has not confirmed their address")
            if data.get("replaced"):
                return contact["email"], {}
            return contact["email"], links.witness_links(UUID(data["submission_id"]), UUID(data["request_id"]))
        email_provider.check_address(contact["email"])  # before a token is written for it
        token = links.new_verification_token()
        ttl = timedelta(hours=get_settings().contact_verification_ttl_hours)
        conn.execute(
            "update public.contacts set verification_token_hash = %s,"
            " verification_expires_at = now() + %s where id = %s",
            [links.sha256_hex(token), ttl, contact["id"]],
        )
        return contact["email"], links.contact_links(token)
    user = conn.execute("select email from public.users where id = %s", [row.user_id]).fetchone()
    if user is None:
        raise Suppressed("the user no longer exists")
    extra: dict[str, str] = {}
    if kind == "deadline_reminder":
        token = links.unsubscribe_token(row.user_id)
        conn.execute(
            "update public.users set unsubscribe_token_hash = %s where id = %s"
            " and unsubscribe_token_hash is distinct from %s",
            [links.sha256_hex(token), row.user_id, links.sha256_hex(token)],
        )
        extra["unsubscribe"] = links.unsubscribe_link(token)
    return str(user["email"]), extra


# What each kind of notice reads from the database at send time, by the id its row holds.
_CONTEXT = {
    "deadline_reminder": (
        "checkpoint_id",
        "select g.title as goal_title, cp.title as checkpoint_title, cp.deadline, cp.is_final,"
        " case when g.proof_challenge then cp.proof_phrase end as proof_phrase"
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
        " coalesce(u.display_name, split_part(u.email, '@', 1)) as owner_name,"
        " case when g.proof_challenge then cp.proof_phrase end as proof_phrase"
        " from public.submissions s join public.checkpoints cp on cp.id = s.checkpoint_id"
        " join public.goals g on g.id = cp.goal_id join public.users u on u.id = s.user_id where s.id = %s",
    ),
    "consequence_notification": (
        "consequence_id",
        "select g.title as goal_title, c.consequence_type::text as consequence_type,"
        " (c.monetary_amount * 100)::bigint as amount_cents, c.charity_destination::text as charity_id,"
        " c.execute_after from public.consequences c join public.goals g on g.id = c.goal_id where c.id = %s",
    ),
    "stake_released": ("goal_id", "select g.title as goal_title from public.goals g where g.id = %s"),
    "goal_changed": (
        "request_id",
        "select g.title as goal_title, r.change_type::text as change_type, r.effective_at,"
        " r.outcome ->> 'reason' as reason from public.goal_change_requests r"
        " join public.goals g on g.id = r.goal_id where r.id = %s",
    ),
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
            raise Suppressed("the checkpoint no longer exists")
        return {**_PLAIN, **{k: v for k, v in data.items() if v is not None}}
    merged = {**data, **{k: found[k] for k in _WORDING if found.get(k) is not None}}
    if kind == "witness_request":
        merged["proof_phrase"] = found["proof_phrase"]
    if kind == "deadline_reminder":
        merged["deadline"] = found["deadline"].isoformat()
        merged["is_final"] = found["is_final"]
        merged["proof_phrase"] = found["proof_phrase"]
    if kind == "submission_result" and not data.get("feedback"):
        merged["feedback"] = _feedback(found)
    if kind == "goal_changed":
        merged["change_type"] = found["change_type"]
        merged["effective_at"] = found["effective_at"].isoformat()
        merged["reason"] = found["reason"]
    if kind == "consequence_notification":
        monetary = found["consequence_type"] == "monetary"
        merged["kind"] = "monetary" if monetary else "humiliation"
        merged["amount_cents"] = found["amount_cents"] if monetary else None
        merged["charity"] = charities.display_name(found["charity_id"]) if monetary else None
        if found["execute_after"] is not None:
            merged["execute_after"] = found["execute_after"].isoformat()
    return merged


def render(row: Notification) -> email_provider.Email:
    settings = get_settings()
    kind = row.type
    data = DATA_MODEL[kind].model_validate(row.template_data).model_dump(mode="json")
    with db.as_service() as conn:
        data = _with_context(conn, kind, data)
        to, links_ = _recipient_and_links(conn, row)
        user = conn.execute(
            "select display_name, time_zone from public.users where id = %s", [row.user_id]
        ).fetchone() or {"display_name": None, "time_zone": "UTC"}
    model = DATA_MODEL[kind].model_validate(data)
    reader = Reader(user["display_name"], user["time_zone"], links_)
    subject, emotion, paragraphs = RENDERERS[kind](model, reader)
    avatar = f"{settings.avatar_base_url}/{emotion}.png"
    text = "\n\n".join(paragraphs) + "\n\n— Threativator\n"
    page = html.render("message.html", avatar_url=avatar, paragraphs=paragraphs)
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
            **model.model_dump(mode="json"),
        }
        if template_id
        else None,
        custom_args={"notification_id": str(row.id), "type": kind},
    )
