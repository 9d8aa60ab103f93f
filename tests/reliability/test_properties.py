"""Hypothesis state machines over the real state functions.

The ledger: any sequence of deposits (some redelivered), activations,
completions, forfeits, withdrawals with refunds that succeed or fail, and
outside refunds keeps the invariants. The consequence protocol: no sequence
of claims, lease expiries, crashes, retries and finishes executes a
consequence (posts its forfeit) twice. PROPERTY_EXAMPLES sets the examples
(25 in `make test`, 300 in `make soak`)."""

from __future__ import annotations

import os
import uuid
from typing import Any
from uuid import UUID

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from psycopg.rows import dict_row

from tests import factories as f
from tests.ledger_invariants import assert_ledger_invariants

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "25"))
# The refusals the ledger is allowed to make: not enough money, a key reused for another amount.
REFUSED = ("23514", "TI001")


def _connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


class LedgerMachine(RuleBasedStateMachine):
    url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.conn = _connect(self.url)
        self.user = f.user(self.conn, "prop")
        self.intents: list[str] = []
        self.goals: list[UUID] = []
        self.refund_rows: list[UUID] = []

    def _try(self, sql: str, params: list[Any]) -> None:
        try:
            self.conn.execute(sql, params)
        except psycopg.Error as error:
            assert error.sqlstate in REFUSED, error

    @rule(cents=st.integers(1, 50_000), redeliver=st.booleans())
    def deposit(self, cents: int, redeliver: bool) -> None:
        intent = self.intents[-1] if redeliver and self.intents else f"pi_prop_{uuid.uuid4().hex[:12]}"
        self.conn.execute("select app.credit_deposit(%s, %s, %s)", [self.user, cents, intent])
        self.intents.append(intent)

    @rule(stake=st.integers(0, 300))
    def activate_goal(self, stake: int) -> None:
        goal = f.goal(self.conn, self.user, stake=f"{stake}.00", activate=False, checkpoints=1)
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

    @precondition(lambda self: bool(self.goals))
    @rule(data=st.data(), cents=st.integers(1, 20_000), repeat=st.booleans())
    def forfeit(self, data: st.DataObject, cents: int, repeat: bool) -> None:
        goal = data.draw(st.sampled_from(self.goals))
        # As the engine does: a share is paid only from what the goal still holds.
        held = self.conn.execute("select app.goal_reserved_cents(%s) as c", [goal]).fetchone()
        cents = min(cents, held["c"] if held else 0)
        if cents <= 0:
            return
        reference = f"forfeit:{goal}" if repeat else f"forfeit:{uuid.uuid4()}"
        self._try(
            "select app.ledger_post(%s, 'forfeit', %s, 0, %s, %s, %s, %s)",
            [self.user, cents, -cents, cents, reference, goal],
        )

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

    @precondition(lambda self: bool(self.intents))
    @rule(data=st.data(), cents=st.integers(1, 5_000))
    def outside_refund(self, data: st.DataObject, cents: int) -> None:
        intent = data.draw(st.sampled_from(self.intents))
        self._try(
            "select app.record_external_refund(%s, %s, %s, %s)",
            [self.user, cents, f"re_{uuid.uuid4().hex[:10]}", intent],
        )

    @precondition(lambda self: bool(self.intents))
    @rule(
        data=st.data(),
        cents=st.integers(1, 20_000),
        step=st.sampled_from(["held", "held", "lost", "won"]),
        dispute=st.sampled_from(["dp_a", "dp_b"]),
    )
    def dispute(self, data: st.DataObject, cents: int, step: str, dispute: str) -> None:
        """Chargebacks in any order, redelivered: held, funds withdrawn, reinstated."""
        intent = data.draw(st.sampled_from(self.intents))
        self._try(
            "select app.record_dispute(%s, %s, %s, %s, %s)", [f"{dispute}_{intent}", self.user, intent, cents, step]
        )

    @invariant()
    def invariants_hold(self) -> None:
        assert_ledger_invariants(self.url)

    def teardown(self) -> None:
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


def test_ledger_invariants_hold_under_any_sequence(database: str) -> None:
    LedgerMachine.url = database
    LedgerMachine.TestCase.settings = PROPERTY_SETTINGS
    LedgerMachine.TestCase().runTest()


def test_no_sequence_executes_a_consequence_twice(database: str) -> None:
    ConsequenceMachine.url = database
    ConsequenceMachine.TestCase.settings = PROPERTY_SETTINGS
    ConsequenceMachine.TestCase().runTest()
