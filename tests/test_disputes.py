"""Disputes never free the stake. Tried as the user who wants out: charge back the deposit behind an
active goal or a consequence in its contest window, let the platform win (or lose), then withdraw.
Through the Stripe webhook, change_goal's neighbours and the real database; the books are checked
after every test (tests/ledger_invariants.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from shared.commitments import deadlines
from tests import factories as f
from tests.conftest import Providers
from tests.fakes import payment_intent
from tests.test_engine import Conn, check, overdue, overdue_goal, trigger
from tests.test_holding_cell import WEBHOOK_SECRET
from tests.test_holding_cell import _cell as holding_cell
from tests.test_money import _dispute, _event


@pytest.fixture(autouse=True)
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)


def cell(owner: Conn, user: UUID) -> dict[str, Any]:
    row = owner.execute(
        "select available_cents, reserved_cents, disputed_cents from public.holding_cells where user_id = %s", [user]
    ).fetchone()
    assert row is not None
    return dict(row)


def goal_reserve(owner: Conn, goal: UUID) -> int:
    row = owner.execute("select app.goal_reserved_cents(%s) as cents", [goal]).fetchone()
    assert row is not None
    return int(row["cents"])


def items(owner: Conn) -> dict[str, int]:
    rows = owner.execute("select kind::text, cents from public.money_items order by created_at").fetchall()
    return {r["kind"]: r["cents"] for r in rows}


def withdraw(user: UUID, cents: int) -> Any:
    return holding_cell(user, {"action": "withdraw", "amount_cents": cents})


def deposit_and_commit(owner: Conn, intent: str, cents: int, **goal: Any) -> tuple[UUID, UUID]:
    user = f.user(owner)
    assert _event("payment_intent.succeeded", payment_intent(intent, user, cents)).status_code == 200
    return user, f.goal(owner, user, stake=f"{cents / 100:.2f}", fund=False, **goal)


def test_a_chargeback_the_platform_wins_gives_the_stake_back_to_its_goal_not_to_the_user(
    providers: Providers, owner: Conn
) -> None:
    user, goal = deposit_and_commit(owner, "pi_win", 10000, checkpoints=0)
    created = _event("charge.dispute.created", _dispute("du_win", "pi_win", 10000))
    assert created.json["applied"] == "dispute_held"
    assert cell(owner, user) == {"available_cents": 0, "reserved_cents": 0, "disputed_cents": 10000}
    assert items(owner) == {"dispute_while_committed": 10000}  # disputing while committed: a person looks
    _event("charge.dispute.funds_withdrawn", _dispute("du_win", "pi_win", 10000, "under_review"))
    reinstated = _event("charge.dispute.funds_reinstated", _dispute("du_win", "pi_win", 10000, "won"))
    assert reinstated.json["applied"] == "dispute_won"
    closed = _event("charge.dispute.closed", _dispute("du_win", "pi_win", 10000, "won"), "evt_du_win_closed")
    assert closed.status_code == 200 and closed.json["applied"] == "dispute_won_nothing_to_move"
    # The money is back where the dispute took it from: the goal, still active, holds its stake.
    assert cell(owner, user) == {"available_cents": 0, "reserved_cents": 10000, "disputed_cents": 0}
    assert goal_reserve(owner, goal) == 10000
    refused = withdraw(user, 10000)
    assert refused.status_code == 400 and "more than your available balance" in refused.json["error"]["message"]
    overdue_goal(owner, goal)
    check()
    assert [t["amount"] for t in providers.stripe.objects["transfer"]] == [10000]
    dispute = owner.execute("select status, closed_at is not null as closed from public.disputes").fetchone()
    assert dispute == {"status": "won", "closed": True}


def test_a_dispute_never_empties_the_reserve_behind_a_held_consequence(
    providers: Providers, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTEST_WINDOW_HOURS", "24")
    user, goal = deposit_and_commit(owner, "pi_held", 10000, checkpoints=1)  # $50.00 for the checkpoint
    overdue(owner, f.checkpoint_ids(owner, goal)[0])
    check()
    consequence = owner.execute("select id, execution_status::text from public.consequences").fetchone()
    assert consequence is not None and consequence["execution_status"] == "held"

    _event("charge.dispute.created", _dispute("du_held", "pi_held", 10000))
    # The free half first; the half the held consequence is owed only with an operator item.
    taken = owner.execute(
        "select reference, amount_cents from public.ledger_entries where entry_type = 'dispute_held' order by id"
    ).fetchall()
    assert [(r["reference"].split(":")[3], r["amount_cents"]) for r in taken] == [("goal", 5000), ("owed", 5000)]
    assert items(owner) == {"dispute_while_committed": 10000, "dispute_takes_owed": 5000}

    # The contest window ends while the dispute is open: the payout waits, with the reason.
    owner.execute("update public.consequences set execute_after = now() - interval '1 second'")
    check()
    assert providers.stripe.objects.get("transfer", []) == []
    waiting = trigger(consequence["id"])
    assert waiting.status_code == 409 and "dispute" in waiting.json["error"]["details"]["deferred_reason"]
    row = owner.execute("select execution_status::text, deferred_reason from public.consequences").fetchone()
    assert row is not None and row["execution_status"] == "pending" and "open card dispute" in row["deferred_reason"]

    # Won: the money goes back to the goal, and the consequence runs in full.
    _event("charge.dispute.funds_reinstated", _dispute("du_held", "pi_held", 10000, "won"))
    assert cell(owner, user) == {"available_cents": 0, "reserved_cents": 10000, "disputed_cents": 0}
    check()
    assert [t["amount"] for t in providers.stripe.objects["transfer"]] == [5000]
    assert withdraw(user, 5000).status_code == 400  # the rest stays the goal's
    assert cell(owner, user) == {"available_cents": 0, "reserved_cents": 5000, "disputed_cents": 0}


def test_a_lost_dispute_fails_the_waiting_consequence_with_its_reason(
    providers: Providers, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTEST_WINDOW_HOURS", "24")
    user, goal = deposit_and_commit(owner, "pi_lost", 6000, checkpoints=1)
    overdue(owner, f.checkpoint_ids(owner, goal)[0])
    check()
    _event("charge.dispute.created", _dispute("du_lost", "pi_lost", 6000))
    _event("charge.dispute.funds_withdrawn", _dispute("du_lost", "pi_lost", 6000, "under_review"))
    owner.execute("update public.consequences set execute_after = now() - interval '1 second'")
    check()
    assert owner.execute("select execution_status::text from public.consequences").fetchone() == {
        "execution_status": "pending"
    }  # withdrawn is not the end: the bank may still decide for the platform
    _event("charge.dispute.closed", _dispute("du_lost", "pi_lost", 6000, "lost"), "evt_du_lost_closed")
    check()
    row = owner.execute("select execution_status::text, last_error from public.consequences").fetchone()
    assert row is not None and row["execution_status"] == "failed"
    assert row["last_error"].startswith("insufficient_funds: the card payment behind this money was charged back")
    assert providers.stripe.objects.get("transfer", []) == []
    assert cell(owner, user) == {"available_cents": 0, "reserved_cents": 0, "disputed_cents": 0}
    notice = owner.execute(
        "select template_data ->> 'outcome' as outcome from public.notifications"
        " where type = 'consequence_notification' and template_data ->> 'outcome' <> 'held'"
    ).fetchone()
    assert notice == {"outcome": "insufficient_funds"}


def test_a_dispute_on_a_closed_goal_returns_what_it_no_longer_needs_to_available(
    providers: Providers, owner: Conn
) -> None:
    """Only what no open goal or unfinished consequence needs becomes available: a user with nothing
    at stake gets a won dispute's money back to spend, and no operator item is raised."""
    user = f.user(owner)
    _event("payment_intent.succeeded", payment_intent("pi_free", user, 4000))
    _event("charge.dispute.created", _dispute("du_free", "pi_free", 4000))
    assert items(owner) == {}
    _event("charge.dispute.funds_reinstated", _dispute("du_free", "pi_free", 4000, "won"))
    assert cell(owner, user) == {"available_cents": 4000, "reserved_cents": 0, "disputed_cents": 0}


@pytest.mark.parametrize("outcome", ["warning_closed", "prevented"])
def test_an_inquiry_closed_without_a_chargeback_gives_back_what_it_held(
    providers: Providers, owner: Conn, outcome: str
) -> None:
    user, goal = deposit_and_commit(owner, "pi_ask", 3000, checkpoints=0)
    _event("charge.dispute.created", _dispute("du_ask", "pi_ask", 3000, "warning_needs_response"))
    assert goal_reserve(owner, goal) == 0
    closed = _event("charge.dispute.closed", _dispute("du_ask", "pi_ask", 3000, outcome))
    assert closed.json["applied"] == "dispute_won"
    assert goal_reserve(owner, goal) == 3000
    assert cell(owner, user) == {"available_cents": 0, "reserved_cents": 3000, "disputed_cents": 0}
    deadlines.run()
    assert owner.execute("select status from public.disputes").fetchone() == {"status": "won"}


def test_a_goal_failed_while_its_money_is_disputed_still_owes_the_whole_rest(providers: Providers, owner: Conn) -> None:
    """Charge back the deposit, let the final deadline pass while the bank decides: the failure's
    consequence counts the disputed money as the goal's and waits; won, the money returns to the
    failed goal that owes it (not to available) and the charity is paid in full."""
    user, goal = deposit_and_commit(owner, "pi_fail", 4000, checkpoints=0)
    _event("charge.dispute.created", _dispute("du_fail", "pi_fail", 4000))
    assert goal_reserve(owner, goal) == 0
    overdue_goal(owner, goal)
    check()
    [owed] = owner.execute(
        "select monetary_amount, execution_status::text as status, deferred_reason from public.consequences"
    ).fetchall()
    assert str(owed["monetary_amount"]) == "40.00" and owed["status"] == "pending"
    assert "open card dispute" in owed["deferred_reason"]
    assert providers.stripe.objects.get("transfer", []) == []
    assert withdraw(user, 1).status_code == 400  # nothing to take out meanwhile
    _event("charge.dispute.funds_reinstated", _dispute("du_fail", "pi_fail", 4000, "won"))
    assert cell(owner, user) == {"available_cents": 0, "reserved_cents": 4000, "disputed_cents": 0}
    check()
    assert [t["amount"] for t in providers.stripe.objects["transfer"]] == [4000]
    assert cell(owner, user) == {"available_cents": 0, "reserved_cents": 0, "disputed_cents": 0}
