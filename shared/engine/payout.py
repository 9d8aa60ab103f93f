"""The payout: a Stripe transfer of the share to the charity, booked in the ledger."""

from __future__ import annotations

from shared import charities, db
from shared.engine.errors import Permanent
from shared.engine.row import Consequence
from shared.providers import stripe_api


def transfer(row: Consequence, owner: str) -> str:
    """Move the share to the charity once, and book the forfeit in the transaction that records it."""
    if row.provider_reference:
        return row.provider_reference  # recorded by an attempt that crashed before finishing
    amount = row.amount_cents
    with db.as_service() as conn:
        reserved = conn.execute("select app.goal_reserved_cents(%s) as c", [row.goal_id]).fetchone()
    if reserved is None or reserved["c"] < amount:
        raise Permanent("insufficient_funds: the holding cell does not hold this share")
    charity = str(row.charity_destination)
    metadata = {
        "consequence_id": str(row.id),
        "goal_id": str(row.goal_id),
        "user_id": str(row.user_id),
        "type": "consequence_payout",
    }
    group = f"goal_{row.goal_id}"
    # An earlier attempt may have moved the money and died before recording it.
    transfer_id = stripe_api.find_transfer(group=group, consequence_id=str(row.id)) if row.attempts > 1 else None
    transfer_id = transfer_id or stripe_api.create_transfer(
        amount_cents=amount,
        charity=charity,
        charity_label=charities.display_name(charity) or charity,
        group=group,
        metadata=metadata,
        idempotency_key=f"consequence-{row.id}",
    )
    with db.as_service() as conn:
        conn.execute("select app.record_transfer(%s, %s, %s, %s)", [row.id, owner, transfer_id, amount])
    return transfer_id
