"""The daily reconciliation: the ledger against Stripe's balance transactions.

At most once a day (a `check_deadlines` stage), the balance transactions Stripe created since
the last run (with a lookback, for events that arrive late) are listed through the SDK, pages
followed, and matched by their source object to what the ledger booked as Stripe's movements
(`stripe_movements`). Stripe's fees are booked here, from the balance transaction that states
them. Every difference (missing on either side, a different amount, a transaction nobody knows)
becomes an operator money item, once: a second run over the same days changes nothing. A Stripe
outage leaves the run unfinished; the next pass tries again."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from shared import db
from shared.log import get_logger
from shared.providers.errors import ProviderRefused, ProviderUnavailable

_logger = get_logger("threativator.reconciliation")

EVERY = timedelta(hours=24)
# Stripe sends events late and our bookings follow them: each run looks back over this much of
# the last run's days, and a booking younger than SETTLING is not yet expected at Stripe.
LOOKBACK = timedelta(days=3)
SETTLING = timedelta(hours=1)
FIRST_RUN_COVERS = timedelta(days=30)
_CHARGES = frozenset({"charge", "payment"})
_PAYOUTS = frozenset({"payout", "payout_cancel", "payout_failure"})


class ReconciliationResult(BaseModel):
    ran: bool = False
    transactions: int = 0
    fees_booked: int = 0
    differences: int = Field(default=0, description="New differences put in the operators' queue")
    error: str | None = None


def due(now: datetime) -> bool:
    with db.as_service() as conn:
        row = conn.execute(
            "select max(started_at) as last from public.reconciliation_runs where finished_at is not null"
        ).fetchone()
    return row is None or row["last"] is None or row["last"] <= now - EVERY


def run(now: datetime | None = None, *, force: bool = False) -> ReconciliationResult:
    from shared.providers import stripe_api

    now = now or datetime.now(UTC)
    if stripe_api.dry():
        return ReconciliationResult()  # no Stripe account to reconcile with (make dev without a key)
    if not force and not due(now):
        return ReconciliationResult()
    with db.as_service() as conn:
        last = conn.execute(
            "select max(covered_until) as until from public.reconciliation_runs where finished_at is not null"
        ).fetchone()
        since = (last["until"] - LOOKBACK) if last and last["until"] else now - FIRST_RUN_COVERS
        run_row = conn.execute(
            "insert into public.reconciliation_runs (covered_from, covered_until) values (%s, %s) returning id",
            [since, now],
        ).fetchone()
    assert run_row is not None
    try:
        txns = stripe_api.balance_transactions(
            created_from=int(since.timestamp()), created_until=int(now.timestamp()) + 1
        )
    except (ProviderUnavailable, ProviderRefused) as error:
        with db.as_service() as conn:
            conn.execute("update public.reconciliation_runs set error = %s where id = %s", [str(error), run_row["id"]])
        _logger.warning("reconciliation deferred: Stripe unavailable")
        return ReconciliationResult(ran=True, error="stripe unavailable; the next pass tries again")
    result = ReconciliationResult(ran=True, transactions=len(txns))
    with db.as_service() as conn:
        result.fees_booked, result.differences = _match(conn, txns, since, now)
        conn.execute(
            "update public.reconciliation_runs set finished_at = now(), transactions = %s, differences = %s,"
            " fees_booked = %s where id = %s",
            [result.transactions, result.differences, result.fees_booked, run_row["id"]],
        )
    _logger.info("reconciliation", extra={"fields": result.model_dump()})
    return result


def _key(txn: Any) -> str | None:
    """The Stripe object the ledger books a transaction under: a charge's PaymentIntent, else its source."""
    if txn.type in _CHARGES and txn.payment_intent:
        return str(txn.payment_intent)
    return str(txn.source) if txn.source else None


def _match(conn: db.Connection, txns: list[Any], since: datetime, until: datetime) -> tuple[int, int]:
    fees = differences = 0
    stripe_amount: dict[str, int] = defaultdict(int)
    stripe_fee: dict[str, int] = defaultdict(int)
    by_key: dict[str, list[Any]] = defaultdict(list)
    for txn in txns:
        if txn.type in _PAYOUTS:
            conn.execute("select app.book_payout(%s, %s, %s)", [txn.id, txn.source or txn.id, txn.amount])
            continue
        key = _key(txn) or txn.id
        stripe_amount[key] += txn.amount
        stripe_fee[key] += txn.fee
        by_key[key].append(txn)
    booked = {
        r["source_id"]: r
        for r in conn.execute(
            "select source_id, sum(amount_cents)::bigint as amount, sum(fee_cents)::bigint as fee,"
            " max(user_id::text) as user_id from public.stripe_movements where source_id = any(%s) group by source_id",
            [list(by_key)],
        ).fetchall()
    }
    for key, group in by_key.items():
        ours = booked.get(key)
        if ours is None:
            kind = "missing_in_ledger" if _known(conn, key) else "unknown_transaction"
            differences += _raise(conn, kind, key, stripe_amount[key], None, None, group)
            continue
        if int(ours["amount"]) != stripe_amount[key]:
            differences += _raise(conn, "amount_differs", key, stripe_amount[key], int(ours["amount"]), ours, group)
            continue
        if int(ours["fee"]) == 0:
            for txn in group:
                if txn.fee > 0:
                    booked_fee = conn.execute("select app.book_stripe_fee(%s, %s, %s) as b", [txn.id, key, txn.fee])
                    row = booked_fee.fetchone()
                    fees += 1 if row and row["b"] else 0
        elif int(ours["fee"]) != stripe_fee[key]:
            differences += _raise(conn, "amount_differs", f"fee:{key}", stripe_fee[key], int(ours["fee"]), ours, group)
    # What the ledger says Stripe moved, settled long enough to be there, that Stripe does not list.
    missing = conn.execute(
        "select source_id, sum(amount_cents)::bigint as amount, max(user_id::text) as user_id"
        " from public.stripe_movements where source_id is not null and kind not in ('fee', 'payout')"
        " and created_at >= %s and created_at < %s and not (source_id = any(%s))"
        " group by source_id having sum(amount_cents) <> 0",
        [since, until - SETTLING, list(by_key)],
    ).fetchall()
    for row in missing:
        differences += _raise(conn, "missing_at_stripe", row["source_id"], None, int(row["amount"]), row, [])
    return fees, differences


def _known(conn: db.Connection, key: str) -> bool:
    """Whether anything of ours names this Stripe object (so its absence from the ledger is ours)."""
    row = conn.execute(
        "select exists (select 1 from public.withdrawal_refunds where stripe_refund_id = %(k)s)"
        " or exists (select 1 from public.consequences where provider_reference = %(k)s)"
        " or exists (select 1 from public.ledger_entries where stripe_object_id = %(k)s)"
        " or exists (select 1 from public.stripe_events where object_id = %(k)s) as known",
        {"k": key},
    ).fetchone()
    return bool(row and row["known"])


def _raise(
    conn: db.Connection,
    kind: str,
    key: str,
    stripe_cents: int | None,
    ledger_cents: int | None,
    ours: Any,
    group: list[Any],
) -> int:
    details = {"balance_transactions": [t.id for t in group], "types": sorted({t.type for t in group})}
    cents = abs((stripe_cents or 0) - (ledger_cents or 0))
    row = conn.execute(
        "select app.raise_money_item(%s, %s, %s, %s, %s, %s, %s) as id",
        [kind, key, cents, ours["user_id"] if ours else None, db.Json(details), stripe_cents, ledger_cents],
    ).fetchone()
    return 1 if row and row["id"] else 0
