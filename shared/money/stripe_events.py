"""Stripe webhook events: verified on the raw body, stored by id, applied once.

The event is recorded and applied in one transaction, so a crash mid-way
leaves it unrecorded and Stripe's redelivery applies it; a redelivered event
that was applied changes nothing. An event about something the ledger does not
hold yet (a refund before its payment) is parked with its object and applied in
the transaction that books the payment.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel

from shared import db
from shared.config import get_settings
from shared.errors import bad_request
from shared.log import get_logger

_logger = get_logger("threativator.stripe_webhook")

REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
# A dispute's events and the ledger step each takes (charge.dispute.closed: by its status).
DISPUTE_STEPS = {
    "charge.dispute.created": "held",
    "charge.dispute.funds_withdrawn": "lost",
    "charge.dispute.funds_reinstated": "won",
    "charge.dispute.closed": None,
}
CLOSED_STEPS = {"won": "won", "lost": "lost", "warning_closed": "won", "prevented": "won"}
# Every event the endpoint must receive, and nothing else: deploy.sh configures the Stripe
# webhook endpoint with exactly this list (docs/api.md, "stripe_webhook"), and _apply handles each.
HANDLED_EVENTS: tuple[str, ...] = ("payment_intent.succeeded", *REFUND_EVENTS, *DISPUTE_STEPS, "transfer.reversed")


class WebhookResult(BaseModel):
    received: bool = True
    duplicate: bool = False
    event_type: str
    applied: str


def verify(payload: bytes, signature: str | None) -> dict[str, Any]:
    """Check Stripe-Signature against STRIPE_WEBHOOK_SECRET and the tolerance; 400 otherwise."""
    if not signature or "v1=" not in signature:
        # Refused before the (heavy) Stripe SDK is even loaded.
        raise bad_request("invalid or stale Stripe signature", code="invalid_signature")
    from shared.providers import stripe_api

    try:
        event = stripe_api.verify_event(payload, signature)
    except stripe_api.InvalidSignature:
        raise bad_request("invalid or stale Stripe signature", code="invalid_signature") from None
    except RecursionError:  # a body nested deeper than any event Stripe sends
        raise bad_request("not a Stripe event: nested too deeply", code="invalid_event") from None
    problem = _shape_problem(event)
    if problem is not None:
        # Signed, but not the shape of an event: refused whole (Stripe retries a 400; nothing of it
        # is applied or recorded), and logged for a person to look at.
        _logger.warning("stripe event refused", extra={"fields": {"problem": problem}})
        raise bad_request(f"not a Stripe event: {problem}", code="invalid_event")
    return event


def _shape_problem(event: dict[str, Any]) -> str | None:
    """What makes a signed body no Stripe event the handlers can read, or None."""
    event_id, event_type, data = event.get("id"), event.get("type"), event.get("data")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
        return "its id is not a string"
    if not isinstance(event_type, str):
        return "its type is not a string"
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return "data.object is not an object"
    obj = data["object"]
    for key in ("id", "object", "payment_intent", "charge", "status", "reason"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            return f"data.object.{key} is not a string"
    metadata = obj.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        return "data.object.metadata is not an object of strings"
    if _has_nul(event):
        return "it holds a NUL character"
    return None


def _has_nul(value: Any) -> bool:
    """PostgreSQL text cannot hold NUL: a string that does would fail half-way through applying."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def handle(payload: bytes, signature: str | None) -> WebhookResult:
    event = verify(payload, signature)
    event_type = str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") or {}
    with db.as_service() as conn:
        row = conn.execute(
            "select app.record_stripe_event(%s, %s, %s) as new", [event["id"], event_type, obj.get("id")]
        ).fetchone()
        if not row or not row["new"]:
            return WebhookResult(duplicate=True, event_type=event_type, applied="nothing")
        applied = _apply(conn, event_type, obj)
        if applied == "parked":
            conn.execute(
                "update public.stripe_events set parked_on = %s, parked_object = %s where id = %s",
                [obj.get("payment_intent"), db.Json(obj), event["id"]],
            )
    _logger.info("stripe event", extra={"fields": {"event_type": event_type, "applied": applied}})
    return WebhookResult(event_type=event_type, applied=applied)


def _user_of(conn: db.Connection, obj: dict[str, Any]) -> UUID | None:
    raw = (obj.get("metadata") or {}).get("user_id")
    try:
        user_id = UUID(str(raw))
    except ValueError:
        return None
    exists = conn.execute("select 1 from public.users where id = %s", [user_id]).fetchone()
    return user_id if exists else None


def _apply(conn: db.Connection, event_type: str, obj: dict[str, Any]) -> str:
    if event_type == "payment_intent.succeeded":
        return _credit(conn, obj)
    if event_type in REFUND_EVENTS and obj.get("object") == "refund":
        return _refund(conn, obj)
    if event_type in DISPUTE_STEPS and obj.get("object") == "dispute":
        return _dispute(conn, event_type, obj)
    if event_type == "transfer.reversed" and obj.get("object") == "transfer":
        return _transfer_reversed(conn, obj)
    return "ignored"


def _transfer_reversed(conn: db.Connection, transfer: dict[str, Any]) -> str:
    """A charity transfer reversed, in all or part: each reversal booked once (app.record_transfer_reversal)."""
    reversals = [r for r in ((transfer.get("reversals") or {}).get("data") or []) if isinstance(r, dict)]
    listed = sum(int(r.get("amount") or 0) for r in reversals)
    total = transfer.get("amount_reversed")
    booked = 0
    for reversal in reversals:
        if isinstance(reversal.get("amount"), int) and reversal.get("id"):
            row = conn.execute(
                "select app.record_transfer_reversal(%s, %s, %s) as new",
                [reversal["id"], transfer.get("id"), reversal["amount"]],
            ).fetchone()
            booked += 1 if row and row["new"] else 0
    if isinstance(total, int) and total > listed:
        # The event lists only the first reversals: the rest is booked under the total it reached.
        conn.execute(
            "select app.record_transfer_reversal(%s, %s, %s)",
            [f"{transfer.get('id')}:upto:{total}", transfer.get("id"), total - listed],
        )
        booked += 1
    return "transfer_reversal_booked" if booked else "transfer_reversal_nothing_new"


def _credit(conn: db.Connection, intent: dict[str, Any]) -> str:
    metadata = intent.get("metadata") or {}
    if metadata.get("purpose") != "holding_cell_deposit":
        return "ignored"
    user_id = _user_of(conn, intent)
    amount = intent.get("amount_received")
    try:
        funding_fee = int(metadata.get("funding_fee_cents") or 0)
    except ValueError:
        funding_fee = -1
    if not isinstance(amount, int) or not 0 <= funding_fee < amount:
        user_id = None
    if user_id is None or not isinstance(amount, int) or amount <= 0:
        _logger.error("deposit for no known user", extra={"fields": {"payment_intent": intent.get("id")}})
        return "unmatched"
    if str(intent.get("currency", "")).lower() != get_settings().currency:
        _logger.error("deposit in another currency", extra={"fields": {"payment_intent": intent.get("id")}})
        return "unmatched"
    # The stake is credited whole; a funding fee the user paid on top of it is the platform's.
    conn.execute(
        "select app.credit_deposit(%s, %s, %s, %s)", [user_id, amount - funding_fee, intent["id"], funding_fee]
    )
    # Events that arrived before this payment wait for it: applied now, in its transaction.
    parked = conn.execute(
        "with waiting as (select id, type, parked_object from public.stripe_events where parked_on = %s for update)"
        " update public.stripe_events e set parked_on = null, parked_object = null from waiting w where e.id = w.id"
        " returning w.id, w.type, w.parked_object",
        [intent["id"]],
    ).fetchall()
    for event in sorted(parked, key=lambda e: str(e["id"])):
        try:
            with conn.transaction():  # a savepoint: a refused event never refuses the payment itself
                outcome = _apply(conn, str(event["type"]), event["parked_object"])
        except Exception as error:
            if not db.is_rule_refusal(error):
                raise
            # Stripe already moved this money (a refund of more than the user still holds): the
            # payment is booked, the event stays parked on it and the operators are told.
            conn.execute(
                "update public.stripe_events set parked_on = %s, parked_object = %s where id = %s",
                [intent["id"], db.Json(event["parked_object"]), event["id"]],
            )
            conn.execute(
                "select app.audit('stripe_event', null, 'unapplied', %s, jsonb_build_object('event_id', %s::text,"
                " 'type', %s::text, 'payment_intent', %s::text))",
                [user_id, event["id"], event["type"], intent["id"]],
            )
            outcome = "unapplied"
        _logger.info("parked stripe event applied", extra={"fields": {"event_id": event["id"], "applied": outcome}})
    return "deposit_credited"


def _refund(conn: db.Connection, refund: dict[str, Any]) -> str:
    status = refund.get("status")
    if status not in ("pending", "succeeded", "failed", "canceled"):
        return "ignored"
    ours = (refund.get("metadata") or {}).get("withdrawal_refund_id")
    if ours:
        exists = conn.execute("select 1 from public.withdrawal_refunds where id = %s", [ours]).fetchone()
        if exists:
            conn.execute(
                "select app.record_refund(%s, %s, %s, %s)",
                [ours, status, refund.get("id"), refund.get("failure_reason")],
            )
            return f"withdrawal_refund_{status}"
    # A refund made outside Threativator: find whose deposit it returned.
    owner = conn.execute(
        "select user_id from public.ledger_entries where entry_type = 'deposit' and stripe_object_id = %s",
        [refund.get("payment_intent")],
    ).fetchone()
    if owner is None:
        # Stripe does not promise order: the payment may not have arrived yet. Parked, not lost.
        return "parked" if refund.get("payment_intent") else "unmatched"
    if status in ("failed", "canceled"):
        # It failed after it succeeded (or before its success arrived): Stripe has the money back.
        conn.execute(
            "select app.record_external_refund_failure(%s, %s, %s)",
            [owner["user_id"], refund.get("id"), refund.get("payment_intent")],
        )
        return "external_refund_failed"
    amount = refund.get("amount")
    if not isinstance(amount, int) or amount <= 0:
        return "ignored"
    conn.execute(
        "select app.record_external_refund(%s, %s, %s, %s)",
        [owner["user_id"], amount, refund.get("id"), refund.get("payment_intent")],
    )
    return "external_refund_recorded"


def _dispute(conn: db.Connection, event_type: str, dispute: dict[str, Any]) -> str:
    """A chargeback on a deposit: held out of what the user can use, then lost or won."""
    # A closed dispute ends as won or lost; an inquiry closed without a chargeback (warning_closed)
    # or a prevented dispute gives back what was held, as a win does.
    closes = DISPUTE_STEPS[event_type] is None
    step = DISPUTE_STEPS[event_type] or CLOSED_STEPS.get(str(dispute.get("status")))
    intent, amount = dispute.get("payment_intent"), dispute.get("amount")
    if step is None or not isinstance(amount, int) or amount <= 0 or not intent:
        return "ignored"
    owner = conn.execute(
        "select user_id from public.ledger_entries where entry_type = 'deposit' and stripe_object_id = %s",
        [intent],
    ).fetchone()
    if owner is None:
        return "parked"  # the payment has not arrived yet
    moved = conn.execute(
        "select app.record_dispute(%s, %s, %s, %s, %s, %s) as cents",
        [dispute.get("id"), owner["user_id"], intent, amount, step, closes],
    ).fetchone()
    _logger.info("dispute step", extra={"fields": {"dispute_id": dispute.get("id"), "step": step}})
    return f"dispute_{step}" if moved and moved["cents"] else f"dispute_{step}_nothing_to_move"
