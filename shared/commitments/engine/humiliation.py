"""Humiliation: the kompromat by email to verified targets, or on the user's X account.

One delivery row per recipient is written before the send; a row left `sending` by a
crash, or whose send timed out, is `uncertain` and never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shared import db
from shared.commitments.engine.errors import Permanent, Retryable
from shared.commitments.engine.row import Consequence
from shared.notifications import html
from shared.providers.errors import ProviderRefused, ProviderUnavailable

# What X accepts as a single media upload here; other kinds of kompromat go by email only.
X_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def _kompromat_of(row: Consequence) -> UUID:
    if row.kompromat_id is None:
        raise Permanent("no kompromat was fixed for this consequence")
    return row.kompromat_id


@dataclass(frozen=True)
class _Story:
    name: str
    goal_title: str


def _story(row: Consequence) -> _Story:
    with db.as_service() as conn:
        found = conn.execute(
            "select coalesce(u.display_name, split_part(u.email, '@', 1)) as name, g.title"
            " from public.goals g join public.users u on u.id = g.user_id where g.id = %s",
            [row.goal_id],
        ).fetchone()
    if found is None:
        raise Permanent("the goal no longer exists")
    return _Story(found["name"], found["title"])


def _deliveries(row: Consequence, channel: str, recipients: list[tuple[UUID | None, str]]) -> list[dict[str, Any]]:
    """Write one delivery row per recipient (once), then return them all."""
    with db.as_service() as conn:
        for contact_id, recipient in recipients:
            conn.execute(
                "insert into public.consequence_deliveries (consequence_id, channel, contact_id, recipient)"
                " values (%s, %s, %s, %s) on conflict do nothing",
                [row.id, channel, contact_id, recipient],
            )
        # A send that a crash interrupted may have gone out: never send it again.
        conn.execute(
            "update public.consequence_deliveries set status = 'uncertain',"
            " last_error = 'interrupted during send' where consequence_id = %s and status = 'sending'",
            [row.id],
        )
        return conn.execute(
            "select * from public.consequence_deliveries where consequence_id = %s and channel = %s"
            " order by created_at, id",
            [row.id, channel],
        ).fetchall()


def _mark(delivery_id: UUID, status: str, reference: str | None = None, error: str | None = None) -> None:
    with db.as_service() as conn:
        conn.execute(
            "update public.consequence_deliveries set status = %s,"
            " provider_reference = coalesce(%s, provider_reference), last_error = %s where id = %s",
            [status, reference, error, delivery_id],
        )


def _skip_declined(row: Consequence, deliveries: list[dict[str, Any]]) -> None:
    """A target who declined since the consequence was created is never mailed: declined is for good."""
    with db.as_service() as conn:
        declined = conn.execute(
            "update public.consequence_deliveries d set status = 'failed', last_error = 'the recipient declined'"
            " where d.consequence_id = %s and d.status = 'queued' and exists (select 1 from"
            " public.contact_suppressions s where s.user_id = %s and s.mailbox = private.mailbox(d.recipient))"
            " returning d.id",
            [row.id, row.user_id],
        ).fetchall()
    gone = {r["id"] for r in declined}
    for delivery in deliveries:
        if delivery["id"] in gone:
            delivery["status"] = "failed"


def by_email(row: Consequence) -> str:
    """The kompromat to every verified target, each delivery at most once."""
    from shared.account import kompromat
    from shared.providers import email as email_provider

    # The recipients were fixed when the consequence was created; edits since change nothing.
    deliveries = _deliveries(row, "email", [])
    if not deliveries:
        raise Permanent("no verified consequence target to receive it")
    _skip_declined(row, deliveries)
    pending = [d for d in deliveries if d["status"] == "queued"]
    retry = False
    if pending:
        story = _story(row)
        item = kompromat.reveal(_kompromat_of(row), reason="humiliation_email", consequence_id=row.id)
        text = (
            f"{story.name} set themselves a goal on Threativator, “{story.goal_title}”, and agreed that if "
            "they missed its deadline, you would receive the attached. They missed it.\n\n— Threativator\n"
        )
        for delivery in pending:
            _mark(delivery["id"], "sending")
            message = email_provider.Email(
                to=[delivery["recipient"]],
                subject=f"{story.name} missed a deadline",
                text=text,
                html=html.render("humiliation.html", name=story.name, goal_title=story.goal_title),
                attachments=[email_provider.Attachment(item.filename, item.file_type, item.content)],
                custom_args={"consequence_id": str(row.id), "delivery_id": str(delivery["id"])},
            )
            try:
                sent = email_provider.send(message)
            except email_provider.EmailRejected as rejected:
                _mark(delivery["id"], "failed", error=str(rejected)[:300])
                continue
            except email_provider.EmailRetryable as retryable:
                if retryable.maybe_sent:
                    # It may have gone out; a second copy is worse than an unconfirmed one.
                    _mark(delivery["id"], "uncertain", error=str(retryable))
                else:
                    _mark(delivery["id"], "queued", error=str(retryable))
                    retry = True
                continue
            _mark(delivery["id"], "sent", reference=sent.message_id)
    if retry:
        raise Retryable("some deliveries will be retried")
    with db.as_service() as conn:
        done = conn.execute(
            "select count(*) filter (where status in ('sent', 'uncertain')) as ok, count(*) as n"
            " from public.consequence_deliveries where consequence_id = %s",
            [row.id],
        ).fetchone()
    if done is None or done["ok"] == 0:
        raise Permanent("every target's address bounced")
    return f"email:{done['ok']}/{done['n']}"


def on_x(row: Consequence) -> str:
    """One post with the kompromat image on the user's connected X account, at most once."""
    from shared.account import kompromat, x_oauth
    from shared.providers import x_api

    delivery = _deliveries(row, "x", [(None, "x")])[0]
    if x_api.dry() and delivery["status"] == "queued":
        reference = x_api.record_dry_post(str(row.user_id), f"post about {_story(row).goal_title}", str(row.id))
        _mark(delivery["id"], "sent", reference=reference)
        return f"x:{reference}"
    if delivery["status"] in ("sent", "uncertain"):
        return f"x:{delivery['provider_reference'] or 'uncertain'}"
    if delivery["status"] == "failed":
        raise Permanent(delivery["last_error"] or "the post failed")
    # X taking our access away fails this post with 'x_revoked': app.finish_consequence then
    # sends the kompromat to the email targets instead, and tells the user.
    try:
        token = x_oauth.access_token(row.user_id)
    except ProviderRefused as revoked:
        raise Permanent(f"x_revoked: {revoked}") from None
    except ProviderUnavailable as unavailable:
        raise Retryable(f"x: {unavailable}") from None
    if token is None:
        raise Permanent("x_revoked: the account is no longer connected")
    item = kompromat.reveal(_kompromat_of(row), reason="humiliation_x", consequence_id=row.id)
    story = _story(row)
    text = f"I missed my deadline for “{story.goal_title}”. I agreed that this would happen if I did. #Threativator"
    if item.file_type not in X_IMAGE_TYPES:
        raise Permanent(f"x: {item.file_type} cannot be posted; it went by email only")
    media_id = x_api.upload_media(token, filename=item.filename, content=item.content, media_type=item.file_type)
    _mark(delivery["id"], "sending")
    try:
        tweet_id = x_api.post(token, text, media_id)
    except ProviderUnavailable:
        _mark(delivery["id"], "queued")  # X answered: nothing was posted
        raise
    except ProviderRefused as refused:
        _mark(delivery["id"], "failed", error=str(refused))
        raise
    _mark(delivery["id"], "sent", reference=tweet_id)
    return f"x:{tweet_id}"
