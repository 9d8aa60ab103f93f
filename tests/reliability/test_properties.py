"""Hypothesis state machines over the real state functions.

The ledger: any sequence of Stripe's events (payments, outside refunds and
disputes, delivered out of order and redelivered), activations, completions,
withdrawals with refunds that succeed or fail, and overlapping scheduler
passes and executions under provider faults keeps the invariants, and what
Stripe moved to charity follows the ledger. The consequence protocol: no sequence
of claims, lease expiries, crashes, retries and finishes executes a
consequence (posts its forfeit) twice. PROPERTY_EXAMPLES sets the examples
(25 in `make test`, 300 in `make soak`)."""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from psycopg.rows import dict_row

from shared.commitments import deadlines, engine
from shared.errors import ApiError
from shared.money import stripe_events
from shared.money.stripe_events import DISPUTE_STEPS
from tests import factories as f
from tests.conftest import Providers
from tests.fakes import FakeStripe, payment_intent, stripe_event, stripe_signature
from tests.ledger_invariants import assert_ledger_invariants
from tests.test_engine import overdue_goal
from tests.test_holding_cell import WEBHOOK_SECRET

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "25"))
# The refusals the ledger is allowed to make: not enough money, a key reused for another amount.
REFUSED = ("23514", "TI001")


def _connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


class LedgerMachine(RuleBasedStateMachine):
    """Money in through Stripe's events (in any order, redelivered), money out through the real
    scheduler and executor (overlapping, with provider faults), and the ledger's own moves between."""

    url: str = ""
    providers: Providers | None = None

    def __init__(self) -> None:
        super().__init__()
        self.conn = _connect(self.url)
        self.user = f.user(self.conn, "prop")
        self.intents: list[str] = []
        self.goals: list[UUID] = []
        self.refund_rows: list[UUID] = []
        self.inbox: list[bytes] = []  # events Stripe has not delivered yet
        self.outside_refunds: list[dict[str, Any]] = []
        self.delivered: list[bytes] = []

    @property
    def stripe(self) -> FakeStripe:
        assert self.providers is not None
        return self.providers.stripe

    def _try(self, sql: str, params: list[Any]) -> None:
        try:
            self.conn.execute(sql, params)
        except psycopg.Error as error:
            assert error.sqlstate in REFUSED, error

    # --- Stripe's events ----------------------------------------------------------------------
    @rule(cents=st.integers(1, 50_000))
    def card_payment(self, cents: int) -> None:
        intent = f"pi_prop_{uuid.uuid4().hex[:12]}"
        self.intents.append(intent)
        self.inbox.append(stripe_event("payment_intent.succeeded", payment_intent(intent, self.user, cents)))

    @precondition(lambda self: bool(self.intents))
    @rule(data=st.data(), cents=st.integers(1, 5_000))
    def outside_refund(self, data: st.DataObject, cents: int) -> None:
        intent = data.draw(st.sampled_from(self.intents))
        refund = {
            "id": f"re_{uuid.uuid4().hex[:10]}",
            "object": "refund",
            "amount": cents,
            "payment_intent": intent,
            "status": "succeeded",
        }
        self.inbox.append(stripe_event("refund.created", refund))
        self.outside_refunds.append(refund)

    @precondition(lambda self: bool(self.outside_refunds))
    @rule(data=st.data())
    def outside_refund_fails(self, data: st.DataObject) -> None:
        """A refund that failed, even after it succeeded: Stripe has the money back."""
        refund = {**data.draw(st.sampled_from(self.outside_refunds)), "status": "failed"}
        self.inbox.append(stripe_event("refund.failed", refund))

    @precondition(lambda self: bool(self.intents))
    @rule(
        data=st.data(),
        cents=st.integers(1, 20_000),
        event=st.sampled_from(sorted(DISPUTE_STEPS)),
        closed_as=st.sampled_from(["won", "lost"]),
        dispute=st.sampled_from(["dp_a", "dp_b"]),
    )
    def dispute(self, data: st.DataObject, cents: int, event: str, closed_as: str, dispute: str) -> None:
        """Chargebacks in any order: created, funds withdrawn, reinstated, closed won or lost."""
        intent = data.draw(st.sampled_from(self.intents))
        status = closed_as if event == "charge.dispute.closed" else "needs_response"
        obj = {
            "id": f"{dispute}_{intent}",
            "object": "dispute",
            "amount": cents,
            "charge": f"ch_{intent}",
            "payment_intent": intent,
            "status": status,
        }
        self.inbox.append(stripe_event(event, obj, f"evt_{uuid.uuid4().hex[:12]}"))

    @precondition(lambda self: bool(self.inbox))
    @rule(data=st.data())
    def stripe_delivers(self, data: st.DataObject) -> None:
        """Any waiting event, not necessarily the oldest: Stripe does not promise order."""
        payload = self.inbox.pop(data.draw(st.integers(0, len(self.inbox) - 1)))
        self._deliver(payload)
        self.delivered.append(payload)

    @precondition(lambda self: bool(self.delivered))
    @rule(data=st.data())
    def stripe_redelivers(self, data: st.DataObject) -> None:
        self._deliver(data.draw(st.sampled_from(self.delivered)))

    def _deliver(self, payload: bytes) -> None:
        # Every authentic event is applied: what no user holds any more is a platform loss (issue 18).
        result = stripe_events.handle(payload, stripe_signature(payload, WEBHOOK_SECRET))
        assert result.received and result.applied not in ("unmatched", "ignored"), result

    # --- The user's own moves ---------------------------------------------------------------------
    @rule(stake=st.integers(0, 300), checkpoints=st.integers(0, 3), pay_first=st.booleans())
    def activate_goal(self, stake: int, checkpoints: int, pay_first: bool) -> None:
        """A new goal, paid for by card just before (as the app's flow does) or from the balance."""
        if pay_first:
            intent = f"pi_prop_{uuid.uuid4().hex[:12]}"
            self.intents.append(intent)
            payload = stripe_event("payment_intent.succeeded", payment_intent(intent, self.user, stake * 100 + 7))
            self._deliver(payload)
            self.delivered.append(payload)
        goal = f.goal(self.conn, self.user, stake=f"{stake}.07", activate=False, checkpoints=checkpoints)
        try:
            self.conn.execute("select app.activate_goal(%s)", [goal])
            self.goals.append(goal)
        except psycopg.Error as error:
            assert error.sqlstate in REFUSED, error

    @precondition(lambda self: bool(self.goals))
    @rule(data=st.data())
    def complete_goal(self, data: st.DataObject) -> None:
        goal = data.draw(st.sampled_from(self.goals))
        self.conn.execute("select app.release_stake(%s)", [goal])

    @rule(cents=st.integers(1, 30_000), key=st.sampled_from(["a-key-0001", "a-key-0002", None]))
    def withdraw(self, cents: int, key: str | None) -> None:
        try:
            row = self.conn.execute(
                "select app.begin_withdrawal(%s, %s, %s) as id", [self.user, cents, key or uuid.uuid4().hex]
            ).fetchone()
        except psycopg.Error as error:
            assert error.sqlstate in REFUSED, error
            return
        assert row is not None
        rows = self.conn.execute("select id from public.withdrawal_refunds where withdrawal_id = %s", [row["id"]])
        self.refund_rows.extend(r["id"] for r in rows.fetchall())

    @precondition(lambda self: bool(self.refund_rows))
    @rule(data=st.data(), status=st.sampled_from(["pending", "succeeded", "failed", "canceled"]))
    def refund_news(self, data: st.DataObject, status: str) -> None:
        row = data.draw(st.sampled_from(self.refund_rows))
        self.conn.execute("select app.record_refund(%s, %s)", [row, status])

    # --- Deadlines: detection and execution, overlapping -------------------------------------------
    @precondition(lambda self: bool(self.goals))
    @rule(data=st.data(), runs=st.integers(2, 5), faulty=st.booleans())
    def deadlines_overlap(self, data: st.DataObject, runs: int, faulty: bool) -> None:
        """Some goals fall due (checkpoints and final in one interval); overlapping scheduler
        passes and direct executions race over them, with 30% provider faults or none."""
        for goal in data.draw(st.lists(st.sampled_from(self.goals), max_size=3, unique=True)):
            if self.conn.execute(
                "select 1 from public.goals where id = %s and final_deadline > now()", [goal]
            ).fetchone():
                overdue_goal(self.conn, goal)
        self.stripe.fault_rate = 0.3 if faulty else 0.0
        errors: list[BaseException] = []

        def scheduler() -> None:
            try:
                deadlines.run()
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        def executor() -> None:
            try:
                for consequence in deadlines.due_consequences(50):
                    try:
                        engine.execute(consequence)
                    except ApiError as error:
                        assert error.status == 409, error  # another executor holds it
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=scheduler if n % 2 == 0 else executor) for n in range(runs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.stripe.fault_rate = 0.0
        assert errors == []

    @rule()
    def leases_and_backoffs_expire(self) -> None:
        self.conn.execute(
            "update public.consequences set next_attempt_at = now(), lease_expires_at = now() - interval '1 second'"
            " where execution_status in ('pending', 'executing')"
        )

    # --- What must always hold ---------------------------------------------------------------
    @invariant()
    def invariants_hold(self) -> None:
        assert_ledger_invariants(self.url)

    @invariant()
    def charity_money_follows_the_ledger(self) -> None:
        """Per goal: booked forfeits <= what Stripe moved <= forfeits + open earmarks <= the stake.
        (A transfer whose answer was lost is in Stripe before it is booked, never the other way.)"""
        moved: Counter[str] = Counter()
        for transfer in list(self.stripe.objects.get("transfer", [])):
            moved[transfer["metadata"]["goal_id"]] += int(transfer["amount"])
        rows = self.conn.execute(
            "select g.id::text as goal, g.monetary_stake * 100 as stake,"
            " coalesce((select sum(forfeited_delta) from public.ledger_entries le where le.goal_id = g.id), 0) as f,"
            " coalesce((select sum(earmarked_cents) from public.consequences c where c.goal_id = g.id), 0) as e"
            " from public.goals g"
        ).fetchall()
        for row in rows:
            assert row["f"] <= moved[row["goal"]] <= row["f"] + row["e"] <= row["stake"], (row, moved[row["goal"]])

    def teardown(self) -> None:
        """Once the faults stop, everything owed is paid: no share fails but for money Stripe took back."""
        try:
            for _ in range(20):
                self.leases_and_backoffs_expire()
                deadlines.run()
                left = self.conn.execute(
                    "select count(*) as n from public.consequences where execution_status in ('pending', 'executing')"
                    " and app.goal_disputed_cents(goal_id) = 0"
                ).fetchone()
                if left == {"n": 0}:
                    break
            # A share fails only when its goal holds nothing more (refunded, charged back or released),
            # and waits, with its reason, while an open dispute holds its goal's money.
            unfinished = self.conn.execute(
                "select execution_status::text as status, last_error, deferred_reason,"
                " app.goal_reserved_cents(goal_id) as held, app.goal_disputed_cents(goal_id) as disputed"
                " from public.consequences where execution_status <> 'completed'"
            ).fetchall()
            for row in unfinished:
                waiting = (
                    row["status"] == "pending" and row["disputed"] > 0 and "dispute" in (row["deferred_reason"] or "")
                )
                failed = (row["last_error"] or "").startswith("insufficient_funds") and row["held"] == 0
                assert waiting or failed, unfinished
            self.charity_money_follows_the_ledger()
        finally:
            self.conn.close()


class ConsequenceMachine(RuleBasedStateMachine):
    url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.conn = _connect(self.url)
        user = f.user(self.conn, "cons")
        goal = f.goal(self.conn, user, stake="90.00", checkpoints=1)
        checkpoint = f.checkpoint_ids(self.conn, goal)[0]
        self.consequence = f.consequence(self.conn, user, goal, checkpoint)
        self.holder: str | None = None
        self.executions = 0

    def _owner_row(self) -> dict[str, Any]:
        row = self.conn.execute("select * from public.consequences where id = %s", [self.consequence]).fetchone()
        assert row is not None
        return row

    @rule(executor=st.sampled_from(["a", "b", "c"]))
    def claim(self, executor: str) -> None:
        row = self.conn.execute(
            "select * from app.claim_consequence(%s, %s, 300)", [self.consequence, executor]
        ).fetchone()
        if row is not None and row["id"] is not None:
            self.holder = executor

    @rule()
    def lease_expires(self) -> None:
        self.conn.execute(
            "update public.consequences set lease_expires_at = now() - interval '1 second'"
            " where id = %s and execution_status = 'executing'",
            [self.consequence],
        )

    @rule()
    def backoff_elapses(self) -> None:
        self.conn.execute("update public.consequences set next_attempt_at = now() where id = %s", [self.consequence])

    @rule(executor=st.sampled_from(["a", "b", "c"]))
    def pay(self, executor: str) -> None:
        try:
            self.conn.execute(
                "select app.record_transfer(%s, %s, %s, 1000)", [self.consequence, executor, f"tr_{executor}"]
            )
            self.executions += 1
        except psycopg.Error as error:
            assert error.sqlstate == "55000", error  # not the holder, or already finished

    @rule(executor=st.sampled_from(["a", "b", "c"]), outcome=st.sampled_from(["completed", "failed", "retry"]))
    def finish(self, executor: str, outcome: str) -> None:
        try:
            self.conn.execute(
                "select app.finish_consequence(%s, %s, %s, null, 0)", [self.consequence, executor, outcome]
            )
        except psycopg.Error as error:
            assert error.sqlstate == "55000", error

    @invariant()
    def executed_at_most_once(self) -> None:
        forfeits = self.conn.execute(
            "select count(*) as n from public.ledger_entries where consequence_id = %s", [self.consequence]
        ).fetchone()
        assert forfeits is not None and forfeits["n"] <= 1
        row = self._owner_row()
        if row["execution_status"] in ("completed", "failed"):
            again = self.conn.execute(
                "select * from app.claim_consequence(%s, 'late', 300)", [self.consequence]
            ).fetchone()
            assert again is None or again["id"] is None  # a finished consequence is never claimable again

    def teardown(self) -> None:
        self.conn.close()


PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES, stateful_step_count=15, deadline=None, suppress_health_check=list(HealthCheck)
)


def test_ledger_invariants_hold_under_any_sequence(
    database: str, providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("CONSEQUENCE_BACKOFF_BASE_SECONDS", "0")
    monkeypatch.setenv("CONSEQUENCE_MAX_ATTEMPTS", "100")
    LedgerMachine.url, LedgerMachine.providers = database, providers
    LedgerMachine.TestCase.settings = settings(PROPERTY_SETTINGS, stateful_step_count=30)
    LedgerMachine.TestCase().runTest()


def test_no_sequence_executes_a_consequence_twice(database: str) -> None:
    ConsequenceMachine.url = database
    ConsequenceMachine.TestCase.settings = PROPERTY_SETTINGS
    ConsequenceMachine.TestCase().runTest()
