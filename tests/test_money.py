"""Money is earmarked before it moves: per goal, what goes to charity never exceeds the stake and
always equals the ledger, whatever overlaps, fails or arrives late."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from shared.commitments import deadlines, engine
from tests import factories as f
from tests.conftest import Providers
from tests.fakes import payment_intent
from tests.test_engine import Conn, overdue, overdue_goal


def _transfers_by_goal(providers: Providers) -> Counter[str]:
    totals: Counter[str] = Counter()
    for transfer in providers.stripe.objects.get("transfer", []):
        totals[transfer["metadata"]["goal_id"]] += int(transfer["amount"])
    return totals


def _forfeits_by_goal(owner: Conn) -> dict[str, int]:
    rows = owner.execute(
        "select goal_id::text as goal, sum(forfeited_delta)::bigint as cents from public.ledger_entries"
        " where entry_type = 'forfeit' group by goal_id"
    ).fetchall()
    return {r["goal"]: r["cents"] for r in rows}


def _cell(owner: Conn, user: UUID) -> dict[str, Any] | None:
    return owner.execute(
        "select available_cents, reserved_cents, forfeited_cents from public.holding_cells where user_id = %s", [user]
    ).fetchone()


def _monetary(owner: Conn, goal: UUID, checkpoint: UUID, amount: str) -> UUID:
    row = owner.execute(
        "insert into public.consequences (checkpoint_id, goal_id, user_id, consequence_type, monetary_amount,"
        " charity_destination) select %s, g.id, g.user_id, 'monetary', %s, g.charity_destination"
        " from public.goals g where g.id = %s returning id",
        [checkpoint, amount, goal],
    ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def test_stale_shares_from_overlapping_runs_never_transfer_past_the_stake(providers: Providers, owner: Conn) -> None:
    """Problem 1: two runs computed a checkpoint share and the final's 'rest of the stake' from stale views."""
    user = f.user(owner)
    goal = f.goal(owner, user, stake="30.00", checkpoints=1)
    checkpoint, final = f.checkpoint_ids(owner, goal)
    owner.execute("update public.checkpoints set status = 'missed' where goal_id = %s", [goal])
    owner.execute("update public.goals set status = 'failed' where id = %s", [goal])
    ids = [_monetary(owner, goal, checkpoint, "15.00"), _monetary(owner, goal, final, "30.00")]
    providers.stripe.delay_each = 0.1  # both executors are in flight at once
    results: list[Any] = []
    threads = [threading.Thread(target=lambda c=c: results.append(engine.execute(c))) for c in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Whichever claims first is paid in full; the other gets what the goal still holds (capped,
    # or nothing once the whole stake is paid). Never $45.00 for a $30.00 stake.
    assert "executed" in {r.outcome for r in results}
    assert _transfers_by_goal(providers)[str(goal)] == 3000
    assert _forfeits_by_goal(owner) == {str(goal): 3000}
    assert _cell(owner, user) == {"available_cents": 0, "reserved_cents": 0, "forfeited_cents": 3000}
    for result in results:
        assert result.outcome == "executed" or (result.last_error or "").startswith("insufficient_funds")


def test_overlapping_detection_and_execution_with_faults_pays_each_goal_at_most_its_stake(
    providers: Providers, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 concurrent scheduler passes and direct executions over goals whose checkpoints and final
    all fall due in the same interval, with 30% provider faults and scheduler processes SIGKILLed."""
    monkeypatch.setenv("CONSEQUENCE_BACKOFF_BASE_SECONDS", "0")
    monkeypatch.setenv("CONSEQUENCE_MAX_ATTEMPTS", "100")
    providers.stripe.fault_rate = 0.3
    providers.stripe.fault_choices = (500, 503, 429)
    goals = {}
    for n in range(6):
        user = f.user(owner, f"racer{n}")
        goal = f.goal(owner, user, stake=f"{10 + n}.07", checkpoints=2)
        overdue_goal(owner, goal)
        goals[str(goal)] = 1007 + n * 100
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            deadlines.run()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    def executor() -> None:
        try:
            for row in owner_ids():
                try:
                    engine.execute(row)
                except Exception as error:
                    if getattr(error, "status", None) != 409:
                        raise
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    def owner_ids() -> list[UUID]:
        with psycopg.connect(owner.info.dsn, autocommit=True) as conn:
            return [r[0] for r in conn.execute("select id from public.consequences").fetchall()]

    threads = [threading.Thread(target=scheduler if n % 2 == 0 else executor) for n in range(20)]
    # Scheduler passes in processes of their own, killed mid-way (SIGKILL) while the others run.
    killed = [
        subprocess.Popen(
            [sys.executable, "-c", "from shared.commitments import deadlines; deadlines.run()"],
            cwd=Path(__file__).resolve().parent.parent,
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    rng = random.Random(12)
    for proc in killed:
        time.sleep(rng.uniform(0.3, 1.0))  # start-up takes about 0.5 s: kills land before and during a pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    for thread in threads:
        thread.join()
    assert errors == []
    providers.stripe.fault_rate = 0.0
    for _ in range(40):  # what later scheduler passes do, once leases expire
        owner.execute(
            "update public.consequences set next_attempt_at = now(), lease_expires_at = now() - interval '1 second'"
            " where execution_status in ('pending', 'executing')"
        )
        deadlines.run()
        left = owner.execute(
            "select count(*) as n from public.consequences where execution_status in ('pending', 'executing')"
        ).fetchone()
        if left == {"n": 0}:
            break
    statuses = owner.execute("select execution_status::text as s, last_error from public.consequences").fetchall()
    assert statuses and all(r["s"] == "completed" for r in statuses), statuses
    transfers, forfeits = _transfers_by_goal(providers), _forfeits_by_goal(owner)
    for goal_id, stake in goals.items():
        assert transfers[goal_id] == forfeits[goal_id] == stake, goal_id  # the whole stake, exactly once
    keys = Counter(t.headers["Idempotency-Key"] for t in providers.stripe.created("/v1/transfers"))
    assert len(providers.stripe.objects["transfer"]) == len(keys)


def test_final_pass_releases_only_what_no_pending_share_is_owed(providers: Providers, owner: Conn) -> None:
    """Problem 2: a share left pending by provider faults survives the final checkpoint's pass."""
    user = f.user(owner)
    goal = f.goal(owner, user, stake="30.00", checkpoints=2)
    first, _second, final = f.checkpoint_ids(owner, goal)
    overdue(owner, first)
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")
    [share] = owner.execute("select id, monetary_amount from public.consequences").fetchall()
    assert str(share["monetary_amount"]) == "10.00"
    providers.stripe.fail_next("/v1/transfers", 503, 503, 503)
    assert engine.execute(share["id"]).outcome == "retry_scheduled"
    submission = f.submission(owner, user, final)
    owner.execute("select app.record_grade(%s, 'passed')", [submission])
    assert _cell(owner, user) == {"available_cents": 2000, "reserved_cents": 1000, "forfeited_cents": 0}
    owner.execute("update public.consequences set next_attempt_at = now()")
    assert engine.execute(share["id"]).outcome == "executed"
    assert _cell(owner, user) == {"available_cents": 2000, "reserved_cents": 0, "forfeited_cents": 1000}
    assert _transfers_by_goal(providers)[str(goal)] == 1000


def test_share_that_fails_for_good_after_completion_is_released(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, stake="30.00", checkpoints=2)
    first, _second, final = f.checkpoint_ids(owner, goal)
    overdue(owner, first)
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")
    [share] = owner.execute("select id from public.consequences").fetchall()
    owner.execute("select app.record_grade(%s, 'passed')", [f.submission(owner, user, final)])
    providers.stripe.fail_next("/v1/transfers", 400)
    assert engine.execute(share["id"]).outcome == "failed"
    earmark = owner.execute("select earmarked_cents from public.consequences where id = %s", [share["id"]])
    assert earmark.fetchone() == {"earmarked_cents": 0}
    assert _cell(owner, user) == {"available_cents": 3000, "reserved_cents": 0, "forfeited_cents": 0}


def test_shares_are_whole_cents_and_the_final_takes_exactly_the_rest(providers: Providers, owner: Conn) -> None:
    """Problem 3: $0.20 over 7 checkpoints used to owe $0.21."""
    user = f.user(owner)
    goal = f.goal(owner, user, stake="0.20", checkpoints=7)
    overdue_goal(owner, goal)
    deadlines.run()
    amounts = owner.execute(
        "select cp.is_final, c.monetary_amount * 100 as cents from public.consequences c"
        " join public.checkpoints cp on cp.id = c.checkpoint_id order by cp.order_position"
    ).fetchall()
    assert [int(r["cents"]) for r in amounts if not r["is_final"]] == [2] * 7
    assert [int(r["cents"]) for r in amounts if r["is_final"]] == [6]
    statuses = owner.execute("select distinct execution_status::text as s from public.consequences").fetchall()
    assert statuses == [{"s": "completed"}]
    assert _transfers_by_goal(providers)[str(goal)] == 20 == _forfeits_by_goal(owner)[str(goal)]


def test_earmarks_past_the_stake_are_refused_by_the_database(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, stake="30.00", checkpoints=1)
    checkpoint, final = f.checkpoint_ids(owner, goal)
    first, second = _monetary(owner, goal, checkpoint, "20.00"), _monetary(owner, goal, final, "20.00")
    owner.execute("update public.consequences set earmarked_cents = 2000 where id = %s", [first])
    with pytest.raises(psycopg.errors.CheckViolation, match="does not cover"):
        owner.execute("update public.consequences set earmarked_cents = 2000 where id = %s", [second])
    # The claim caps what it earmarks at what the goal still holds.
    claimed = owner.execute("select * from app.claim_consequence(%s, 'x')", [second]).fetchone()
    assert claimed is not None and claimed["earmarked_cents"] == 1000


# -----------------------------------------------------------------------------
# Stripe's events, out of order and from outside
# -----------------------------------------------------------------------------
def _event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> Any:
    from tests.fakes import stripe_event, stripe_signature
    from tests.http_helpers import client
    from tests.test_holding_cell import WEBHOOK_SECRET

    payload = stripe_event(event_type, obj, event_id)
    return client("stripe_webhook").post(
        "/",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": stripe_signature(payload, WEBHOOK_SECRET)},
    )


def _outside_refund(refund: str, intent: str, cents: int) -> dict[str, Any]:
    return {"id": refund, "object": "refund", "amount": cents, "payment_intent": intent, "status": "succeeded"}


@pytest.fixture
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_holding_cell import WEBHOOK_SECRET

    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)


def test_refund_before_payment_is_applied_when_payment_arrives(
    providers: Providers, owner: Conn, webhook_secret: None
) -> None:
    """Problem 5: refund.created before payment_intent.succeeded was dropped as 'unmatched'."""
    user = f.user(owner)
    early = _event("refund.created", _outside_refund("re_early", "pi_late", 1000), "evt_refund")
    assert early.status_code == 200 and early.json["applied"] == "parked"
    again = _event("refund.created", _outside_refund("re_early", "pi_late", 1000), "evt_refund")
    assert again.json["duplicate"] is True  # a redelivery while parked changes nothing
    paid = _event("payment_intent.succeeded", payment_intent("pi_late", user, 3000), "evt_paid")
    assert paid.json["applied"] == "deposit_credited"
    assert _cell(owner, user) == {"available_cents": 2000, "reserved_cents": 0, "forfeited_cents": 0}
    parked = owner.execute("select count(*) as n from public.stripe_events where parked_on is not null")
    assert parked.fetchone() == {"n": 0}
    _event("payment_intent.succeeded", payment_intent("pi_late", user, 3000), "evt_paid_again")
    assert _cell(owner, user) == {"available_cents": 2000, "reserved_cents": 0, "forfeited_cents": 0}


def test_outside_refund_of_a_reserved_deposit_shrinks_its_goal_and_nothing_moves_past_it(
    providers: Providers, owner: Conn, webhook_secret: None
) -> None:
    """Problem 6: the goal kept a reservation Stripe no longer held; its failure then transferred it."""
    user = f.user(owner)
    assert (
        _event("payment_intent.succeeded", payment_intent("pi_stake", user, 3000)).json["applied"] == "deposit_credited"
    )
    goal = f.goal(owner, user, stake="30.00", checkpoints=0, fund=False)
    refunded = _event("refund.created", _outside_refund("re_dash", "pi_stake", 1000))
    assert refunded.status_code == 200 and refunded.json["applied"] == "external_refund_recorded"
    reserved = owner.execute("select app.goal_reserved_cents(%s) as c", [goal]).fetchone()
    assert reserved == {"c": 2000}
    assert _cell(owner, user) == {"available_cents": 0, "reserved_cents": 2000, "forfeited_cents": 0}
    overdue_goal(owner, goal)
    deadlines.run()
    [row] = owner.execute(
        "select execution_status::text as s, monetary_amount from public.consequences"
        " where consequence_type = 'monetary'"
    ).fetchall()
    assert row["s"] == "completed" and str(row["monetary_amount"]) == "20.00"
    assert _transfers_by_goal(providers)[str(goal)] == 2000 == _forfeits_by_goal(owner)[str(goal)]


# -----------------------------------------------------------------------------
# Disputes (chargebacks)
# -----------------------------------------------------------------------------
def _dispute(dispute: str, intent: str, cents: int, status: str = "needs_response") -> dict[str, Any]:
    return {
        "id": dispute,
        "object": "dispute",
        "amount": cents,
        "charge": f"ch_{intent}",
        "payment_intent": intent,
        "status": status,
    }


def _disputed(owner: Conn, user: UUID) -> int:
    row = owner.execute("select disputed_cents from public.holding_cells where user_id = %s", [user]).fetchone()
    return int(row["disputed_cents"]) if row else 0


def test_charged_back_stake_is_not_paid_to_charity(providers: Providers, owner: Conn, webhook_secret: None) -> None:
    """Problem 4: fund a stake, charge it back through the bank, and the platform still paid the charity."""
    user = f.user(owner)
    _event("payment_intent.succeeded", payment_intent("pi_cb", user, 3000))
    goal = f.goal(owner, user, stake="30.00", checkpoints=0, fund=False)
    held = _event("charge.dispute.created", _dispute("dp_1", "pi_cb", 3000), "evt_dp_created")
    assert held.status_code == 200 and held.json["applied"] == "dispute_held"
    assert _cell(owner, user) == {"available_cents": 0, "reserved_cents": 0, "forfeited_cents": 0}
    assert _disputed(owner, user) == 3000
    again = _event("charge.dispute.created", _dispute("dp_1", "pi_cb", 3000), "evt_dp_created_2")
    assert again.status_code == 200 and again.json["applied"] == "dispute_held_nothing_to_move"
    assert _disputed(owner, user) == 3000
    lost = _event("charge.dispute.funds_withdrawn", _dispute("dp_1", "pi_cb", 3000, "under_review"))
    assert lost.json["applied"] == "dispute_lost" and _disputed(owner, user) == 0
    overdue_goal(owner, goal)
    deadlines.run()
    assert providers.stripe.objects.get("transfer", []) == []  # nothing the platform no longer holds
    # The goal's consequence owes the stake the dispute holds, and waits for the dispute to close.
    waiting = owner.execute(
        "select execution_status::text as status, deferred_reason from public.consequences"
        " where consequence_type = 'monetary'"
    ).fetchone()
    assert waiting is not None and waiting["status"] == "pending" and "dispute" in waiting["deferred_reason"]
    _event("charge.dispute.closed", _dispute("dp_1", "pi_cb", 3000, "lost"), "evt_dp_closed")
    deadlines.run()
    assert providers.stripe.objects.get("transfer", []) == []
    failed = owner.execute("select execution_status::text as status, last_error from public.consequences").fetchone()
    assert failed is not None and failed["status"] == "failed" and "charged back" in failed["last_error"]


def test_dispute_won_returns_the_money_once(providers: Providers, owner: Conn, webhook_secret: None) -> None:
    user = f.user(owner)
    _event("payment_intent.succeeded", payment_intent("pi_won", user, 5000))
    _event("charge.dispute.created", _dispute("dp_w", "pi_won", 2000))
    _event("charge.dispute.funds_withdrawn", _dispute("dp_w", "pi_won", 2000, "under_review"))
    assert _cell(owner, user) == {"available_cents": 3000, "reserved_cents": 0, "forfeited_cents": 0}
    won = _event("charge.dispute.funds_reinstated", _dispute("dp_w", "pi_won", 2000, "won"))
    assert won.json["applied"] == "dispute_won"
    closed = _event("charge.dispute.closed", _dispute("dp_w", "pi_won", 2000, "won"), "evt_dp_w_closed")
    assert closed.status_code == 200 and closed.json["applied"] == "dispute_won_nothing_to_move"
    assert _cell(owner, user) == {"available_cents": 5000, "reserved_cents": 0, "forfeited_cents": 0}
    assert _disputed(owner, user) == 0


def test_dispute_after_the_stake_went_to_charity_is_answered_and_surfaced(
    providers: Providers, owner: Conn, webhook_secret: None
) -> None:
    user = f.user(owner)
    _event("payment_intent.succeeded", payment_intent("pi_gone", user, 3000))
    goal = f.goal(owner, user, stake="30.00", checkpoints=0, fund=False)
    overdue_goal(owner, goal)
    deadlines.run()
    assert _transfers_by_goal(providers)[str(goal)] == 3000
    late = _event("charge.dispute.created", _dispute("dp_late", "pi_gone", 3000))
    assert late.status_code == 200
    audit = owner.execute("select details from public.audit_log where action = 'dispute_after_payout'").fetchone()
    assert audit is not None and audit["details"]["uncovered_cents"] == 3000


def test_dispute_before_its_payment_is_parked(providers: Providers, owner: Conn, webhook_secret: None) -> None:
    user = f.user(owner)
    assert _event("charge.dispute.created", _dispute("dp_early", "pi_slow", 1000)).json["applied"] == "parked"
    _event("payment_intent.succeeded", payment_intent("pi_slow", user, 3000))
    assert _cell(owner, user) == {"available_cents": 2000, "reserved_cents": 0, "forfeited_cents": 0}
    assert _disputed(owner, user) == 1000


def test_a_parked_event_the_ledger_refuses_never_refuses_its_payment(
    providers: Providers, owner: Conn, webhook_secret: None
) -> None:
    """Found by the ledger state machine: a parked refund larger than its payment made the payment's
    own event fail, so Stripe's retries could never credit the deposit. Since issue 18 the ledger
    no longer refuses it: what the user never held is the platform's loss, for the operators."""
    user = f.user(owner)
    assert _event("refund.created", _outside_refund("re_big", "pi_small", 200)).json["applied"] == "parked"
    paid = _event("payment_intent.succeeded", payment_intent("pi_small", user, 100))
    assert paid.status_code == 200 and paid.json["applied"] == "deposit_credited"
    assert _cell(owner, user) == {"available_cents": 0, "reserved_cents": 0, "forfeited_cents": 0}
    loss = owner.execute(
        "select sum(amount_cents) as cents from public.platform_entries where account = 'platform_losses'"
    ).fetchone()
    assert loss == {"cents": -100}
    item = owner.execute("select kind::text, cents from public.money_items").fetchone()
    assert item == {"kind": "platform_loss", "cents": 100}
    still = owner.execute("select count(*) as n from public.stripe_events where parked_on is not null").fetchone()
    assert still == {"n": 0}
