"""Stripe objects for our flow, built from Stripe's own published examples.

`tests/data/stripe_fixtures.json` holds the example objects Stripe publishes with its OpenAPI
description (repository stripe/openapi, `openapi/fixtures3.json`), unchanged. Each builder takes
one and sets only what our flow decides (ids, amounts, statuses, metadata, links between
objects), so every other field is exactly as Stripe shapes it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from uuid import UUID

_FIXTURES: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "stripe_fixtures.json").read_text())


def example(kind: str, **changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = copy.deepcopy(_FIXTURES[kind])
    obj.update(changes)
    return obj


def payment_intent(intent: str, user: UUID, cents: int, funding_fee_cents: int = 0) -> dict[str, Any]:
    """A holding-cell deposit's PaymentIntent as payment_intent.succeeded carries it."""
    return example(
        "payment_intent",
        id=intent,
        amount=cents,
        amount_received=cents,
        status="succeeded",
        canceled_at=None,
        last_payment_error=None,
        next_action=None,
        latest_charge=f"ch_{intent}",
        client_secret=f"{intent}_secret_x",
        metadata={
            "user_id": str(user),
            "purpose": "holding_cell_deposit",
            "funding_fee_cents": str(funding_fee_cents),
        },
    )


def refund(
    refund_id: str,
    intent: str,
    cents: int,
    status: str = "succeeded",
    metadata: dict[str, str] | None = None,
    failure_balance_transaction: str | None = None,
) -> dict[str, Any]:
    obj = example(
        "refund",
        id=refund_id,
        amount=cents,
        charge=f"ch_{intent}",
        payment_intent=intent,
        status=status,
        metadata=metadata or {},
        balance_transaction=f"txn_{refund_id}",
    )
    if status == "failed":
        obj["failure_balance_transaction"] = failure_balance_transaction or f"txn_{refund_id}_failure"
        obj["failure_reason"] = "expired_or_canceled_card"
    return obj


def dispute(dispute_id: str, intent: str, cents: int, status: str) -> dict[str, Any]:
    return example("dispute", id=dispute_id, amount=cents, charge=f"ch_{intent}", payment_intent=intent, status=status)


def reversed_transfer(transfer_id: str, cents: int, reversals: list[tuple[str, int]]) -> dict[str, Any]:
    """A charity transfer as transfer.reversed carries it, with its reversals listed."""
    data = [
        example("transfer_reversal", id=reversal_id, amount=amount, transfer=transfer_id)
        for reversal_id, amount in reversals
    ]
    transfer = example(
        "transfer",
        id=transfer_id,
        amount=cents,
        amount_reversed=sum(amount for _, amount in reversals),
        reversed=sum(amount for _, amount in reversals) == cents,
    )
    transfer["reversals"] = {**transfer["reversals"], "data": data, "url": f"/v1/transfers/{transfer_id}/reversals"}
    return transfer
