"""The ledger agrees with Stripe (issue 18): every transition of the objects we use is booked
once, in or out of order; what no user holds any more is a platform loss, never a refusal; the
books balance; fees are booked and someone chosen pays them; a daily reconciliation finds what
differs. Events are built from Stripe's published example objects (tests/stripe_objects.py), and
the Stripe stand-in keeps a balance transaction for every movement, as Stripe does."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from shared.auth import mint_token
from shared.money import reconciliation
from shared.money.reconciliation import ReconciliationResult
from tests import factories as f
from tests import stripe_objects as so
from tests.conftest import Providers
from tests.fakes import stripe_event, stripe_signature
from tests.http_helpers import bearer, client
from tests.test_engine import check, overdue_goal
from tests.test_holding_cell import WEBHOOK_SECRET

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def stripe(providers: Providers, monkeypatch: pytest.MonkeyPatch) -> Providers:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    return providers


def send(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> Any:
    payload = stripe_event(event_type, obj, event_id or f"evt_{uuid4().hex[:20]}")
    response = client("stripe_webhook").post(
        "/",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": stripe_signature(payload, WEBHOOK_SECRET)},
    )
    assert response.status_code == 200, response.json  # every authentic event is answered 2xx
    return response.json


def pay(stripe: Providers, user: UUID, intent: str, cents: int, funding_fee: int = 0) -> None:
    """The card is charged (Stripe's balance gains it, less its fee) and Stripe tells us."""
    stripe.stripe.charge(intent, cents)
    assert send("payment_intent.succeeded", so.payment_intent(intent, user, cents, funding_fee))["applied"] == (
        "deposit_credited"
    )


def cell(owner: Conn, user: UUID) -> dict[str, int]:
    row = owner.execute(
        "select available_cents, reserved_cents, forfeited_cents, disputed_cents from public.holding_cells"
        " where user_id = %s",
        [user],
    ).fetchone()
    return dict(row) if row else {}


def books(owner: Conn) -> dict[str, int]:
    return {r["account"]: int(r["cents"]) for r in owner.execute("select * from app.books()").fetchall()}


def items(owner: Conn) -> set[tuple[str, str]]:
    rows = owner.execute("select kind::text, source_id from public.money_items where resolved_at is null").fetchall()
    return {(r["kind"], r["source_id"]) for r in rows}


def reconciled(owner: Conn, stripe: Providers) -> ReconciliationResult:
    """Reconcile with the stand-in, then: the books balance, and what they say Stripe holds is
    what Stripe's balance transactions add up to."""
    result = reconciliation.run(force=True)
    assert result.ran and result.error is None
    difference = owner.execute("select app.books_difference() as d").fetchone()
    assert difference == {"d": 0}
    assert books(owner)["stripe"] == stripe.stripe.held()
    assert not {kind for kind, _ in items(owner)} & {
        "missing_in_ledger",
        "missing_at_stripe",
        "amount_differs",
        "unknown_transaction",
    }
    return result


def fail_goal(owner: Conn, user: UUID, stake: str = "30.00") -> UUID:
    goal = f.goal(owner, user, stake=stake, checkpoints=0, fund=False)
    overdue_goal(owner, goal)
    check()
    return goal


def operator() -> dict[str, str]:
    return bearer(mint_token(str(uuid4()), app_metadata={"role": "operator"}))


# -----------------------------------------------------------------------------
# Refunds: ours failing after success, outside ones, and outside ones after a payout
# -----------------------------------------------------------------------------
def test_a_withdrawal_refund_that_fails_after_it_succeeded_returns_the_money_once(
    stripe: Providers, owner: Conn
) -> None:
    user = f.user(owner)
    pay(stripe, user, "pi_w", 5000)
    withdrawn = client("holding_cell").post(
        "/",
        json={"action": "withdraw", "amount_cents": 2000, "idempotency_key": "wd-00000001"},
        headers=bearer(mint_token(str(user))),
    )
    assert withdrawn.status_code == 200 and withdrawn.json["status"] == "completed"
    [refund] = stripe.stripe.objects["refund"]
    assert cell(owner, user)["available_cents"] == 3000
    reconciled(owner, stripe)
    # Weeks later the card refund fails: Stripe puts the money back in the balance.
    failed = so.refund(refund["id"], "pi_w", 2000, "failed", metadata=refund["metadata"])
    stripe.stripe.add_balance("refund_failure", 2000, refund["id"])
    assert send("refund.failed", failed)["applied"] == "withdrawal_refund_failed"
    assert send("refund.updated", failed)["applied"] == "withdrawal_refund_failed"  # the same news again
    assert send("charge.refund.updated", so.refund(refund["id"], "pi_w", 2000, metadata=refund["metadata"]))
    assert cell(owner, user)["available_cents"] == 5000  # returned once; a stale success changes nothing
    status = owner.execute("select status::text from public.withdrawal_refunds").fetchone()
    assert status == {"status": "failed"}
    # The money could not reach the card: the operators are told, once.
    assert items(owner) == {("refund_refused", f"withdrawal_refund:{refund['metadata']['withdrawal_refund_id']}")}
    reconciled(owner, stripe)


def test_an_outside_refund_that_fails_after_it_succeeded_is_reversed_once(stripe: Providers, owner: Conn) -> None:
    user = f.user(owner)
    pay(stripe, user, "pi_o", 3000)
    stripe.stripe.add_balance("refund", -1000, "re_dash")
    assert send("refund.created", so.refund("re_dash", "pi_o", 1000))["applied"] == "external_refund_recorded"
    assert cell(owner, user)["available_cents"] == 2000
    stripe.stripe.add_balance("refund_failure", 1000, "re_dash")
    failed = so.refund("re_dash", "pi_o", 1000, "failed")
    assert send("refund.failed", failed)["applied"] == "external_refund_failed"
    assert send("refund.updated", failed)["applied"] == "external_refund_failed"
    assert cell(owner, user)["available_cents"] == 3000
    reconciled(owner, stripe)


def test_an_outside_refund_whose_failure_arrives_first_books_nothing(stripe: Providers, owner: Conn) -> None:
    user = f.user(owner)
    pay(stripe, user, "pi_ooo", 3000)
    stripe.stripe.add_balance("refund", -500, "re_late")
    stripe.stripe.add_balance("refund_failure", 500, "re_late")
    assert send("refund.failed", so.refund("re_late", "pi_ooo", 500, "failed"))["applied"] == "external_refund_failed"
    assert send("refund.created", so.refund("re_late", "pi_ooo", 500))["applied"] == "external_refund_recorded"
    assert cell(owner, user)["available_cents"] == 3000
    reconciled(owner, stripe)


def test_an_outside_refund_after_the_stake_went_to_charity_is_a_platform_loss_never_refused(
    stripe: Providers, owner: Conn
) -> None:
    user = f.user(owner)
    pay(stripe, user, "pi_gone", 3000)
    fail_goal(owner, user)
    assert cell(owner, user) == {
        "available_cents": 0,
        "reserved_cents": 0,
        "forfeited_cents": 3000,
        "disputed_cents": 0,
    }
    stripe.stripe.add_balance("refund", -3000, "re_after")
    refund = so.refund("re_after", "pi_gone", 3000)
    assert send("refund.created", refund)["applied"] == "external_refund_recorded"
    assert send("refund.updated", refund)["applied"] == "external_refund_recorded"  # redelivered: booked once
    assert books(owner)["platform_losses"] == -3000
    assert cell(owner, user)["forfeited_cents"] == 3000  # the charity's money is the charity's
    assert items(owner) == {("platform_loss", "refund:re_after")}
    reconciled(owner, stripe)
    # The operators see it, and close it once, with what they did.
    listed = client("operator_review").post("/", json={"action": "list"}, headers=operator())
    [item] = [i for i in listed.json["items"] if i["kind"] == "money"]
    assert (item["why"], item["amount_cents"], item["stripe_object"]) == ("platform_loss", 3000, "re_after")
    body = {"action": "resolve_money", "money_item_id": item["id"], "reason": "written off; card issuer refund"}
    assert client("operator_review").post("/", json=body, headers=operator()).status_code == 200
    assert client("operator_review").post("/", json=body, headers=operator()).status_code == 409
    assert items(owner) == set()


# -----------------------------------------------------------------------------
# Transfers reversed, disputes lost and won after the payout
# -----------------------------------------------------------------------------
def test_a_reversed_charity_transfer_leaves_the_charity_and_is_owed_again(stripe: Providers, owner: Conn) -> None:
    user = f.user(owner)
    pay(stripe, user, "pi_tr", 3000)
    goal = fail_goal(owner, user)
    [transfer] = stripe.stripe.objects["transfer"]
    stripe.stripe.add_balance("transfer_refund", 1000, "trr_1")
    obj = so.reversed_transfer(transfer["id"], 3000, [("trr_1", 1000)])
    assert send("transfer.reversed", obj)["applied"] == "transfer_reversal_booked"
    assert send("transfer.reversed", obj)["applied"] == "transfer_reversal_nothing_new"
    forfeited = owner.execute(
        "select sum(forfeited_delta) as cents from public.ledger_entries where goal_id = %s", [goal]
    ).fetchone()
    assert forfeited == {"cents": 2000}  # what the charity holds, and no more
    assert books(owner)["charity_payable"] == 1000
    assert items(owner) == {("transfer_reversed", "trr_1")}
    # Reversed again, in full: the second reversal is booked, the first not twice.
    stripe.stripe.add_balance("transfer_refund", 2000, "trr_2")
    send("transfer.reversed", so.reversed_transfer(transfer["id"], 3000, [("trr_1", 1000), ("trr_2", 2000)]))
    assert books(owner)["charity_payable"] == 3000
    assert cell(owner, user)["forfeited_cents"] == 0
    reconciled(owner, stripe)


def test_a_charge_back_after_the_payout_is_a_loss_and_its_reversal_returns_it(stripe: Providers, owner: Conn) -> None:
    user = f.user(owner)
    pay(stripe, user, "pi_cb", 3000)
    fail_goal(owner, user)
    assert send("charge.dispute.created", so.dispute("du_1", "pi_cb", 3000, "needs_response"))
    stripe.stripe.add_balance("adjustment", -3000, "du_1", fee=1500)
    withdrawn = send("charge.dispute.funds_withdrawn", so.dispute("du_1", "pi_cb", 3000, "under_review"))
    assert withdrawn["applied"] == "dispute_lost_nothing_to_move"
    assert books(owner)["platform_losses"] == -3000 and items(owner) == {("platform_loss", "dispute:du_1")}
    assert send("charge.dispute.closed", so.dispute("du_1", "pi_cb", 3000, "lost"))["applied"].endswith(
        "nothing_to_move"
    )
    reconciled(owner, stripe)
    assert books(owner)["stripe_fees"] == -(stripe.stripe.fee_for(3000) + 1500)
    stripe.stripe.add_balance("adjustment", 3000, "du_1")
    assert send("charge.dispute.funds_reinstated", so.dispute("du_1", "pi_cb", 3000, "won"))["applied"] == "dispute_won"
    assert send("charge.dispute.closed", so.dispute("du_1", "pi_cb", 3000, "won"))["applied"].endswith(
        "nothing_to_move"
    )
    assert books(owner)["platform_losses"] == 0
    reconciled(owner, stripe)


def test_funds_withdrawn_before_the_dispute_arrives_holds_then_loses_once(stripe: Providers, owner: Conn) -> None:
    user = f.user(owner)
    pay(stripe, user, "pi_early", 3000)
    stripe.stripe.add_balance("adjustment", -2000, "du_early")
    assert (
        send("charge.dispute.funds_withdrawn", so.dispute("du_early", "pi_early", 2000, "under_review"))["applied"]
        == "dispute_lost"
    )
    created = send("charge.dispute.created", so.dispute("du_early", "pi_early", 2000, "needs_response"))
    assert created["applied"] == "dispute_held_nothing_to_move"
    assert cell(owner, user) == {
        "available_cents": 1000,
        "reserved_cents": 0,
        "forfeited_cents": 0,
        "disputed_cents": 0,
    }
    assert books(owner)["platform_losses"] == 0
    reconciled(owner, stripe)


# -----------------------------------------------------------------------------
# The daily reconciliation
# -----------------------------------------------------------------------------
def test_reconciliation_reports_each_difference_once_and_books_fees(stripe: Providers, owner: Conn) -> None:
    user = f.user(owner)
    pay(stripe, user, "pi_a", 3000)  # matches
    stripe.stripe.charge("pi_b", 2500)  # planted: Stripe charged 2500, the ledger booked 2000
    send("payment_intent.succeeded", so.payment_intent("pi_b", user, 2000))
    stripe.stripe.charge("pi_c", 1000)  # planted: known to us (its event came) but never booked
    assert send("payment_intent.succeeded", so.payment_intent("pi_c", uuid4(), 1000))["applied"] == "unmatched"
    stripe.stripe.add_balance("adjustment", -700, "adj_unknown")  # planted: nobody knows it
    send("payment_intent.succeeded", so.payment_intent("pi_d", user, 4000))  # planted: never at Stripe
    owner.execute("update public.stripe_movements set created_at = now() - interval '2 hours' where source_id = 'pi_d'")

    first = reconciliation.run(force=True)
    assert first.ran and first.error is None and first.transactions == 4
    assert first.differences == 4 and first.fees_booked == 1
    assert items(owner) == {
        ("amount_differs", "pi_b"),
        ("missing_in_ledger", "pi_c"),
        ("unknown_transaction", "adj_unknown"),
        ("missing_at_stripe", "pi_d"),
    }
    assert stripe.stripe.balance_pages >= 2  # pages of two, followed
    assert books(owner)["stripe_fees"] == -stripe.stripe.fee_for(3000)
    again = reconciliation.run(force=True)
    assert (again.differences, again.fees_booked) == (0, 0)
    assert len(items(owner)) == 4
    listed = client("operator_review").post("/", json={"action": "list"}, headers=operator())
    assert {(i["why"], i["stripe_object"]) for i in listed.json["items"] if i["kind"] == "money"} == items(owner)


def test_reconciliation_runs_once_a_day_in_check_deadlines_and_retries_an_outage(
    stripe: Providers, owner: Conn
) -> None:
    user = f.user(owner)
    pay(stripe, user, "pi_daily", 3000)
    stripe.stripe.fail_next("/v1/balance_transactions", 503, 503, 503)
    outage = check()["reconciliation"]
    assert outage is not None and outage["error"] is not None
    stripe.stripe.faults.clear()
    done = check()["reconciliation"]
    assert done is not None and done["error"] is None and done["fees_booked"] == 1
    assert check()["reconciliation"] is None  # once a day
    owner.execute("update public.reconciliation_runs set started_at = started_at - interval '25 hours'")
    assert check()["reconciliation"] is not None


# -----------------------------------------------------------------------------
# Fees: booked, and paid by whom FUNDING_FEE_PAYER says
# -----------------------------------------------------------------------------
def _deposit_through_stripe(stripe: Providers, owner: Conn, user: UUID, key: str) -> dict[str, Any]:
    answer = client("holding_cell").post(
        "/",
        json={"action": "deposit", "amount_cents": 3000, "idempotency_key": key},
        headers=bearer(mint_token(str(user))),
    )
    assert answer.status_code == 200, answer.json
    intent = next(i for i in stripe.stripe.objects["payment_intent"] if i["id"] == answer.json["payment_intent_id"])
    fee = answer.json["funding_fee"]
    assert intent["amount"] == fee["charge_cents"] == 3000 + fee["fee_cents"]
    assert intent["metadata"]["funding_fee_cents"] == str(fee["fee_cents"])
    pay(stripe, user, intent["id"], intent["amount"], int(intent["metadata"]["funding_fee_cents"]))
    return dict(answer.json)


@pytest.mark.parametrize("payer", ["user", "platform"])
def test_the_stake_is_whole_at_both_ends_and_the_fee_is_paid_by_the_chosen_party(
    stripe: Providers, owner: Conn, monkeypatch: pytest.MonkeyPatch, payer: str
) -> None:
    monkeypatch.setenv("FUNDING_FEE_PAYER", payer)
    winner, loser = f.user(owner, "winner"), f.user(owner, "loser")
    shown = _deposit_through_stripe(stripe, owner, winner, "dep-fee-000001")["funding_fee"]
    if payer == "user":
        # Shown before paying: 3000 + 30 over 97.1% is 3120.49, so 3121 is charged; Stripe keeps
        # 2.9% of 3121 (90.5, rounded to 91) + 30 = 121, and the platform nets 3000.
        assert (shown["fee_cents"], shown["charge_cents"]) == (121, 3121)
        assert "ceil((amount + 30¢) / (1 - 2.9%))" in shown["formula"]
    else:
        assert (shown["fee_cents"], shown["charge_cents"]) == (0, 3000)
    assert cell(owner, winner)["available_cents"] == 3000  # the stake, whole
    # Success end: the winner withdraws the whole stake.
    withdrawn = client("holding_cell").post(
        "/",
        json={"action": "withdraw", "amount_cents": 3000, "idempotency_key": "wd-fee-000001"},
        headers=bearer(mint_token(str(winner))),
    )
    assert withdrawn.status_code == 200 and [r["amount_cents"] for r in withdrawn.json["refunds"]] == [3000]
    # Failure end: the charity gets the whole stake.
    _deposit_through_stripe(stripe, owner, loser, "dep-fee-000002")
    fail_goal(owner, loser)
    assert [t["amount"] for t in stripe.stripe.objects["transfer"]] == [3000]
    reconciled(owner, stripe)
    accounts = books(owner)
    assert accounts["stripe_fees"] == -stripe.stripe.kept()  # what Stripe's balance transactions say it kept
    if payer == "user":
        assert accounts["funding_fees"] == 2 * 121 and accounts["funding_fees"] + accounts["stripe_fees"] == 0
    else:
        assert accounts["funding_fees"] == 0 and accounts["stripe_fees"] == -2 * stripe.stripe.fee_for(3000)


# -----------------------------------------------------------------------------
# The endpoint's events, configured through the Stripe API
# -----------------------------------------------------------------------------
def test_stripe_webhook_command_configures_exactly_the_handled_events(
    stripe: Providers, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.dev import cli
    from shared.money.stripe_events import HANDLED_EVENTS

    url = "https://europe-west1-proj.cloudfunctions.net/stripe_webhook"
    assert cli.main(["stripe-webhook", "--url", url]) == 0
    assert "created" in capsys.readouterr().out
    stripe.stripe.endpoints[0]["enabled_events"] = ["charge.succeeded"]  # drifted by hand in the Dashboard
    assert cli.main(["stripe-webhook", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "updated" in out and "whsec" not in out
    [endpoint] = stripe.stripe.endpoints
    assert endpoint["url"] == url and endpoint["enabled_events"] == list(HANDLED_EVENTS)


def test_written_off_differences_agree_with_stripe_at_the_next_reconciliation(stripe: Providers, owner: Conn) -> None:
    """An operator writes off each difference: the books take Stripe's figure, the difference goes to
    platform_losses, and the next reconciliation finds Stripe and the books agreeing."""
    user = f.user(owner)
    stripe.stripe.charge("pi_b", 2500)  # Stripe charged 2500, the ledger booked 2000
    send("payment_intent.succeeded", so.payment_intent("pi_b", user, 2000))
    stripe.stripe.charge("pi_c", 1000)  # never booked
    send("payment_intent.succeeded", so.payment_intent("pi_c", uuid4(), 1000))
    stripe.stripe.add_balance("adjustment", -700, "adj_unknown")
    send("payment_intent.succeeded", so.payment_intent("pi_d", user, 4000))  # never at Stripe
    owner.execute("update public.stripe_movements set created_at = now() - interval '2 hours' where source_id = 'pi_d'")
    assert reconciliation.run(force=True).differences == 4
    open_items = owner.execute("select id, kind::text from public.money_items where resolved_at is null").fetchall()
    losses_before = books(owner).get("platform_losses", 0)
    # The operator sees what Stripe says of a difference: its balance transaction, fetched when shown.
    differs = next(i for i in open_items if i["kind"] == "amount_differs")
    shown = (
        client("operator_review")
        .post("/", json={"action": "show", "kind": "money", "id": str(differs["id"])}, headers=operator())
        .json
    )
    [txn] = [o["object"] for o in shown["stripe_objects"] if o["id"].startswith("txn_")]
    assert (txn["object"], txn["amount"], txn["source"]["payment_intent"]) == ("balance_transaction", 2500, "pi_b")
    for item in open_items:
        body = {
            "action": "resolve_money",
            "money_item_id": str(item["id"]),
            "reason": "written off: checked in the Dashboard",
            "resolution": "write_off",
        }
        answer = client("operator_review").post("/", json=body, headers=operator())
        assert answer.status_code == 200 and answer.json["resolution"] == "write_off", answer.json
    # 500 and 1000 Stripe holds beyond the books, 700 and 4000 it does not: -3200 net to the platform.
    assert books(owner)["platform_losses"] - losses_before == 500 + 1000 - 700 - 4000
    again = reconciliation.run(force=True)  # books the fees it could not match before
    assert again.ran and again.differences == 0
    assert items(owner) == set()
    assert books(owner)["stripe"] == stripe.stripe.held()
    # A write-off is not open to every kind, and an item closes once.
    loss = owner.execute(
        "insert into public.money_items (kind, source_id, cents) values ('platform_loss', 'du_x', 100) returning id"
    ).fetchone()
    assert loss is not None
    body = {"action": "resolve_money", "money_item_id": str(loss["id"]), "reason": "r", "resolution": "write_off"}
    refused = client("operator_review").post("/", json=body, headers=operator())
    assert refused.status_code == 400 and "not an action for a platform loss item" in refused.json["error"]["message"]
    done = client("operator_review").post(
        "/", json={**body, "money_item_id": str(open_items[0]["id"])}, headers=operator()
    )
    assert done.status_code == 409
