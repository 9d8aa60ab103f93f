"""trigger_consequence's core: execute one consequence, exactly once.

1. Claim the row (pending -> executing, with a lease). A second caller gets the
   recorded result or a 409, never a second execution.
2. Carry it out:
   - monetary: a Stripe transfer to the charity's Connect account, idempotency
     key `consequence-<id>`, transfer group `goal_<goal id>`; the ledger forfeit
     is posted in the same transaction that records the transfer id. A retry
     first looks for the transfer by its group and metadata, so even past
     Stripe's 24-hour key window no money moves twice.
   - humiliation by email: one delivery row per verified target, written before
     the send; a row left `sending` by a crash is marked `uncertain` and never
     re-sent.
   - humiliation on X: the same delivery protocol around media upload + tweet.
3. Finish: completed, failed (permanent, with the reason), or pending again
   after an exponential backoff. The user is told, vaguely for humiliation.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import BaseModel

from shared import charities, db
from shared.config import ConfigError, get_settings
from shared.errors import ApiError, not_found
from shared.log import get_logger
from shared.providers.errors import ProviderRefused, ProviderUnavailable

if TYPE_CHECKING:
    pass

_logger = get_logger("threativator.engine")

# What X accepts as a single media upload here; other kinds of kompromat go by email only.
X_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


class TriggerRequest(BaseModel):
    consequence_id: UUID


class ExecutionResult(BaseModel):
    consequence_id: UUID
    execution_status: Literal["pending", "executing", "completed", "failed"]
    outcome: Literal["executed", "already_done", "retry_scheduled", "failed"]
    attempts: int
    provider_reference: str | None = None
    last_error: str | None = None


class Retryable(ProviderUnavailable):
    """Worth trying again later (timeouts, 429, 5xx)."""


class Permanent(ProviderRefused):
    """Will not get better by retrying (declined, revoked, bounced, insufficient funds)."""


def executor_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _result(row: dict[str, Any], outcome: str) -> ExecutionResult:
    return ExecutionResult.model_validate(
        {
            "consequence_id": row["id"],
            "execution_status": str(row["execution_status"]),
            "outcome": outcome,
            "attempts": row["attempts"],
            "provider_reference": row["provider_reference"],
            "last_error": row["last_error"],
        }
    )


def execute(consequence_id: UUID, owner: str | None = None) -> ExecutionResult:
    """Claim and carry out one consequence; safe to call any number of times."""
    owner = owner or executor_id()
    settings = get_settings()
    with db.as_service() as conn:
        row = conn.execute(
            "select * from app.claim_consequence(%s, %s, %s)",
            [consequence_id, owner, settings.consequence_lease_seconds],
        ).fetchone()
        if row is None or row["id"] is None:
            current = conn.execute("select * from public.consequences where id = %s", [consequence_id]).fetchone()
    if row is None or row["id"] is None:
        if current is None:
            raise not_found("no such consequence")
        if current["execution_status"] in ("completed", "failed"):
            return _result(current, "already_done")
        raise ApiError(
            409,
            "in_progress",
            "this consequence is being executed or is waiting for its retry time",
            {
                "execution_status": str(current["execution_status"]),
                "next_attempt_at": current["next_attempt_at"].isoformat(),
            },
        )
    log_fields = {
        "consequence_id": str(consequence_id),
        "type": str(row["consequence_type"]),
        "attempt": row["attempts"],
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


def _retry(row: dict[str, Any], owner: str, error: str, log_fields: dict[str, Any]) -> ExecutionResult:
    settings = get_settings()
    if row["attempts"] >= settings.consequence_max_attempts:
        finished = _finish(row, owner, "failed", error=f"gave up after {row['attempts']} attempts: {error}")
        _logger.error("consequence gave up", extra={"fields": {**log_fields, "reason": error}})
        return _result(finished, "failed")
    backoff = settings.consequence_backoff_base_seconds * 2 ** min(row["attempts"] - 1, 10)
    finished = _finish(row, owner, "retry", error=error, retry_in=backoff)
    _logger.warning("consequence will be retried", extra={"fields": {**log_fields, "reason": error}})
    return _result(finished, "retry_scheduled")


def _finish(
    row: dict[str, Any],
    owner: str,
    outcome: str,
    *,
    error: str | None = None,
    retry_in: int | None = None,
    provider_reference: str | None = None,
) -> dict[str, Any]:
    with db.as_service() as conn:
        finished = conn.execute(
            "select * from app.finish_consequence(%s, %s, %s, %s, %s, %s)",
            [row["id"], owner, outcome, error, retry_in, provider_reference],
        ).fetchone()
    assert finished is not None
    return finished


def _carry_out(row: dict[str, Any], owner: str) -> str | None:
    kind = str(row["consequence_type"])
    if kind == "monetary":
        return _transfer(row, owner)
    if kind == "humiliation_email":
        return _humiliate_by_email(row)
    return _humiliate_on_x(row)


# -----------------------------------------------------------------------------
# Money
# -----------------------------------------------------------------------------
def _transfer(row: dict[str, Any], owner: str) -> str:

    if row["provider_reference"]:
        return str(row["provider_reference"])  # recorded by an attempt that crashed before finishing
    amount = int(row["monetary_amount"] * 100)  # numeric(10,2): exact in cents
    with db.as_service() as conn:
        reserved = conn.execute("select app.goal_reserved_cents(%s) as c", [row["goal_id"]]).fetchone()
    if reserved is None or reserved["c"] < amount:
        raise Permanent("insufficient_funds: the holding cell does not hold this share")
    charity = str(row["charity_destination"])
    metadata = {
        "consequence_id": str(row["id"]),
        "goal_id": str(row["goal_id"]),
        "user_id": str(row["user_id"]),
        "type": "consequence_payout",
    }
    from shared.providers import stripe_api

    group = f"goal_{row['goal_id']}"
    # An earlier attempt may have moved the money and died before recording it.
    transfer_id = stripe_api.find_transfer(group=group, consequence_id=str(row["id"])) if row["attempts"] > 1 else None
    transfer_id = transfer_id or stripe_api.create_transfer(
        amount_cents=amount,
        charity=charity,
        charity_label=charities.display_name(charity) or charity,
        group=group,
        metadata=metadata,
        idempotency_key=f"consequence-{row['id']}",
    )
    with db.as_service() as conn:
        conn.execute("select app.record_transfer(%s, %s, %s, %s)", [row["id"], owner, transfer_id, amount])
    return transfer_id


# -----------------------------------------------------------------------------
# Humiliation
# -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Story:
    name: str
    goal_title: str


def _story(row: dict[str, Any]) -> _Story:
    with db.as_service() as conn:
        found = conn.execute(
            "select coalesce(u.display_name, split_part(u.email, '@', 1)) as name, g.title"
            " from public.goals g join public.users u on u.id = g.user_id where g.id = %s",
            [row["goal_id"]],
        ).fetchone()
    assert found is not None
    return _Story(found["name"], found["title"])


def _deliveries(row: dict[str, Any], channel: str, recipients: list[tuple[UUID | None, str]]) -> list[dict[str, Any]]:
    """Write one delivery row per recipient (once), then return them all."""
    with db.as_service() as conn:
        for contact_id, recipient in recipients:
            conn.execute(
                "insert into public.consequence_deliveries (consequence_id, channel, contact_id, recipient)"
                " values (%s, %s, %s, %s) on conflict do nothing",
                [row["id"], channel, contact_id, recipient],
            )
        # A send that a crash interrupted may have gone out: never send it again.
        conn.execute(
            "update public.consequence_deliveries set status = 'uncertain',"
            " last_error = 'interrupted during send' where consequence_id = %s and status = 'sending'",
            [row["id"]],
        )
        return conn.execute(
            "select * from public.consequence_deliveries where consequence_id = %s and channel = %s"
            " order by created_at, id",
            [row["id"], channel],
        ).fetchall()


def _mark(delivery_id: UUID, status: str, reference: str | None = None, error: str | None = None) -> None:
    with db.as_service() as conn:
        conn.execute(
            "update public.consequence_deliveries set status = %s,"
            " provider_reference = coalesce(%s, provider_reference), last_error = %s where id = %s",
            [status, reference, error, delivery_id],
        )


def _targets(row: dict[str, Any]) -> list[tuple[UUID | None, str]]:
    with db.as_service() as conn:
        if row["target_contact_id"] is not None:
            found = conn.execute(
                "select id, email from public.contacts where id = %s and verified and declined_at is null",
                [row["target_contact_id"]],
            ).fetchall()
        else:
            found = conn.execute(
                "select id, email from public.contacts where user_id = %s and verified"
                " and declined_at is null and 'consequence_target' = any (role) order by created_at",
                [row["user_id"]],
            ).fetchall()
    return [(r["id"], r["email"]) for r in found]


def _humiliate_by_email(row: dict[str, Any]) -> str:
    from shared import kompromat
    from shared.providers import email as email_provider

    deliveries = _deliveries(row, "email", _targets(row))
    if not deliveries:
        raise Permanent("no verified consequence target to receive it")
    pending = [d for d in deliveries if d["status"] == "queued"]
    retry = False
    if pending:
        story = _story(row)
        item = kompromat.reveal(row["kompromat_id"], reason="humiliation_email", consequence_id=row["id"])
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
                html="".join(f"<p>{p}</p>" for p in text.split("\n\n") if p.strip()),
                attachments=[email_provider.Attachment(item.filename, item.file_type, item.content)],
                custom_args={"consequence_id": str(row["id"]), "delivery_id": str(delivery["id"])},
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
            [row["id"]],
        ).fetchone()
    assert done is not None
    if done["ok"] == 0:
        raise Permanent("every target's address bounced")
    return f"email:{done['ok']}/{done['n']}"


def _humiliate_on_x(row: dict[str, Any]) -> str:
    from shared import kompromat, x_oauth
    from shared.providers import x_api

    delivery = _deliveries(row, "x", [(None, "x")])[0]
    if x_api.dry() and delivery["status"] == "queued":
        reference = x_api.record_dry_post(str(row["user_id"]), f"post about {_story(row).goal_title}", str(row["id"]))
        _mark(delivery["id"], "sent", reference=reference)
        return f"x:{reference}"
    if delivery["status"] in ("sent", "uncertain"):
        return f"x:{delivery['provider_reference'] or 'uncertain'}"
    if delivery["status"] == "failed":
        raise Permanent(delivery["last_error"] or "the post failed")
    try:
        token = x_oauth.access_token(row["user_id"])
    except ProviderRefused as revoked:
        raise Permanent(f"x: {revoked}") from None
    except ProviderUnavailable as unavailable:
        raise Retryable(f"x: {unavailable}") from None
    if token is None:
        raise Permanent("x: the account is no longer connected")
    item = kompromat.reveal(row["kompromat_id"], reason="humiliation_x", consequence_id=row["id"])
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
