"""The payout: a Stripe transfer of the earmarked share to the charity, booked in the ledger.

Earmark (at claim, under the goal's lock), then move (Stripe, idempotency key
`consequence-<id>`), then book: `app.record_transfer` turns the earmark into the
forfeit in the transaction that completes the consequence (`book`, called by the
protocol's finish), so the transfer id, the forfeit and the user's notice commit
together. A crash after the move and before that commit leaves the consequence
executing; the next attempt finds the transfer by its group and metadata (or
Stripe answers the same key with the same transfer) and books it then. A
permanent failure releases the earmark in `app.finish_consequence`.
"""

from __future__ import annotations

from shared import charities
from shared.commitments.engine.errors import Permanent
from shared.commitments.engine.row import Consequence
from shared.db import Connection
from shared.providers import stripe_api


def transfer(row: Consequence, owner: str) -> str:
    """Move the share to the charity once; the transfer id, booked by `book` when the consequence finishes."""
    if row.provider_reference:
        return row.provider_reference  # recorded by an attempt that crashed before finishing
    # The claim earmarked the amount under the goal's lock, capped at what the goal holds:
    # only earmarked money ever moves.
    amount = row.earmarked_cents
    if amount <= 0:
        # Why the money is short, when we know it (a card dispute that took it was lost).
        raise Permanent(
            f"insufficient_funds: {row.deferred_reason or 'the goal no longer holds anything for this share'}"
        )
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
    return transfer_id


def book(conn: Connection, row: Consequence, owner: str, transfer_id: str) -> None:
    """Record the transfer and turn the earmark into the forfeit, inside the finishing transaction."""
    if row.provider_reference:
        return  # recorded by an attempt that crashed before finishing
    conn.execute("select app.record_transfer(%s, %s, %s, %s)", [row.id, owner, transfer_id, row.earmarked_cents])
