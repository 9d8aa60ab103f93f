"""operator_review answers what a decision needs, and money items are resolved by action. Through
HTTP and the real database, each with its denied cases: a user, a user whose user_metadata says
operator, and the service. Looking is audited as deciding is."""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID, uuid4

import pytest

from shared.auth import mint_token
from tests import factories as f
from tests.conftest import Providers
from tests.http_helpers import bearer, client
from tests.images import PNG
from tests.test_contest import _contest, _failed_goal
from tests.test_engine import Conn
from tests.test_grading import Stack, as_user, file_submission, grade
from tests.test_grading import stack as stack
from tests.test_holding_cell import _cell, _pay
from tests.test_holding_cell import stripe as stripe
from tests.test_proof_reuse import _second_checkpoint_submission

PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def operator_token(owner: Conn) -> tuple[UUID, str]:
    user = f.user(owner, "operator")
    return user, mint_token(str(user), app_metadata={"role": "operator"})


def review(token: str, body: dict[str, Any]) -> Any:
    return client("operator_review").post("/", json=body, headers=bearer(token))


def audits(owner: Conn, operator: UUID) -> list[str]:
    rows = owner.execute(
        "select action from public.audit_log where entity = 'review' and user_id = %s order by id", [operator]
    ).fetchall()
    return [r["action"] for r in rows]


def denied(owner: Conn, body: dict[str, Any]) -> None:
    """A user, a user who wrote "operator" into their own metadata, and the service: 403 each."""
    user = f.user(owner)
    for token in (mint_token(str(user)), mint_token(str(user), user_metadata={"role": "operator"})):
        answer = review(token, body)
        assert answer.status_code == 403 and answer.json["error"]["message"] == "operators only", answer.json
    service = review(mint_token(None, role="service_role"), body)
    assert service.status_code == 403 and "signed-in user" in service.json["error"]["message"]


def test_a_reuse_item_shows_both_proofs_side_by_side_and_looking_is_audited(stack: Stack, owner: Conn) -> None:
    alice = f.user(owner, "alice")
    first = file_submission(owner, stack, alice, PNG, path="c/1.png")
    assert grade(first, as_user(alice)).json["status"] == "passed"
    again = _second_checkpoint_submission(owner, stack, alice, PNG, "c/2.png")
    assert grade(again, as_user(alice)).json["status"] == "needs_review"
    operator, token = operator_token(owner)

    listed = review(token, {"action": "list"})
    assert listed.status_code == 200
    [item] = listed.json["items"]
    assert (item["kind"], item["why"], item["actions"]) == ("submission", "reused_proof", ["pass", "fail"])
    assert 0 <= item["age_hours"] < 1 and item["sla_hours"] == 48 and item["overdue"] is False

    shown = review(token, {"action": "show", "kind": "submission", "id": str(again)})
    assert shown.status_code == 200, shown.json
    detail = shown.json
    assert detail["proof"]["submission_id"] == str(again) and detail["proof"]["proof"]["images"] == [PNG_URL]
    assert detail["earlier_proof"]["submission_id"] == str(first)
    assert detail["earlier_proof"]["proof"]["images"] == [PNG_URL] and detail["earlier_proof"]["same_user"] is True
    assert detail["earlier_proof"]["captured_at"] and detail["proof"]["captured_at"]
    assert detail["match"]["check"] == "exact_reuse" and detail["match"]["checks"]["exact_reuse"] == "matched"
    assert audits(owner, operator) == ["review_listed", "review_viewed"]

    missing = review(token, {"action": "show", "kind": "submission", "id": str(uuid4())})
    assert missing.status_code == 404
    assert review(token, {"action": "show", "kind": "consequence", "id": str(again)}).status_code == 404
    denied(owner, {"action": "show", "kind": "submission", "id": str(again)})
    denied(owner, {"action": "list"})
    denied(owner, {"action": "decide_submission", "submission_id": str(again), "decision": "pass", "reason": "mine"})
    status = owner.execute("select status::text from public.submissions where id = %s", [again]).fetchone()
    assert status == {"status": "needs_review"}  # the refused decisions changed nothing


def test_a_contest_shows_the_goal_its_deadlines_and_the_kompromat_as_type_and_size(
    providers: Providers, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTEST_WINDOW_HOURS", "24")
    user, goal, row = _failed_goal(owner)
    assert _contest(user, row["id"], "The upload went in at 23:58, see the screenshot").status_code == 200
    _, token = operator_token(owner)
    detail = review(token, {"action": "show", "kind": "consequence", "id": str(row["id"])}).json
    assert detail["item"]["contest_reason"] == "The upload went in at 23:58, see the screenshot"
    assert detail["item"]["amount_cents"] == 3000 and detail["item"]["actions"] == ["execute", "cancel"]
    assert detail["goal"]["id"] == str(goal) and detail["goal"]["status"] == "failed"
    assert detail["goal"]["stake_cents"] == 3000
    [final] = detail["checkpoints"]
    assert final["status"] == "missed" and final["contested"] is True and final["submissions"] == []
    denied(owner, {"action": "show", "kind": "consequence", "id": str(row["id"])})
    for decision in ("execute", "cancel"):
        denied(
            owner,
            {"action": "decide_consequence", "consequence_id": str(row["id"]), "decision": decision, "reason": "r"},
        )
    still = owner.execute("select execution_status::text, contest_status::text from public.consequences").fetchone()
    assert still == {"execution_status": "held", "contest_status": "contested"}


def _refused_refund(stripe: Any, owner: Conn, user: UUID, intent: str) -> dict[str, Any]:
    _pay(user, intent, 3000)
    stripe.fail_next("/v1/refunds", 400)
    assert (
        _cell(user, {"action": "withdraw", "amount_cents": 3000, "idempotency_key": f"wd-{intent}"}).json["status"]
        == "failed"
    )
    item = owner.execute(
        "select id, kind::text, cents from public.money_items where resolved_at is null order by created_at desc"
    ).fetchone()
    assert item is not None and item["kind"] == "refund_refused" and item["cents"] == 3000
    return dict(item)


def _available(owner: Conn, user: UUID) -> int:
    row = owner.execute("select available_cents from public.holding_cells where user_id = %s", [user]).fetchone()
    assert row is not None
    return int(row["available_cents"])


def test_a_refused_refund_is_retried_under_a_new_key(stripe: Any, owner: Conn) -> None:
    user = f.user(owner, "card-holder")
    item = _refused_refund(stripe, owner, user, "pi_retry")
    _, token = operator_token(owner)
    detail = review(token, {"action": "show", "kind": "money", "id": str(item["id"])}).json
    assert detail["item"]["actions"] == ["note", "retry_refund", "book_outside_payment"]
    assert [e["type"] for e in detail["ledger_entries"]] == ["deposit", "withdrawal", "withdrawal_reversed"]
    assert {m["kind"] for m in detail["stripe_movements"]} >= {"charge"}
    # What Stripe says now: the payment the refused refund was to return money to (Stripe's stand-in
    # never saw this test's payment made, and says so, as Stripe would).
    assert detail["stripe_objects"] == [
        {"id": "pi_retry", "unavailable": "stripe refused the request: resource_missing"}
    ]
    for resolution in ("note", "retry_refund", "book_outside_payment", "write_off"):
        denied(
            owner,
            {"action": "resolve_money", "money_item_id": str(item["id"]), "reason": "x", "resolution": resolution},
        )
    assert stripe.created("/v1/refunds") == [] and _available(owner, user) == 3000  # nothing moved

    body = {
        "action": "resolve_money",
        "money_item_id": str(item["id"]),
        "reason": "the user confirmed a new card",
        "resolution": "retry_refund",
    }
    answer = review(token, body)
    assert answer.status_code == 200 and answer.json["resolution"] == "retry_refund", answer.json
    [refund] = stripe.created("/v1/refunds")  # the refused one was never created
    assert refund.form["amount"] == "3000" and refund.form["payment_intent"] == "pi_retry"
    refused_row = owner.execute("select source_id from public.money_items").fetchone()
    assert refused_row is not None  # a new refund row, so a new idempotency key
    assert refund.form["metadata[withdrawal_refund_id]"] != refused_row["source_id"].split(":")[1]
    assert refund.headers["Idempotency-Key"].endswith(refund.form["metadata[withdrawal_refund_id]"])
    assert _available(owner, user) == 0
    assert review(token, body).status_code == 409  # once
    resolved = owner.execute("select resolution, details ->> 'action' as action from public.money_items").fetchone()
    assert resolved == {"resolution": "the user confirmed a new card", "action": "retry_refund"}


def test_a_payment_outside_stripe_is_booked_and_balances(stripe: Any, owner: Conn) -> None:
    user = f.user(owner, "paid-by-bank")
    item = _refused_refund(stripe, owner, user, "pi_bank")
    _, token = operator_token(owner)
    body = {
        "action": "resolve_money",
        "money_item_id": str(item["id"]),
        "reason": "sent by bank transfer, ref 42",
        "resolution": "book_outside_payment",
    }
    assert review(token, body).status_code == 200
    assert _available(owner, user) == 0
    booked = owner.execute(
        "select account::text, amount_cents from public.platform_entries where account = 'outside_payments'"
    ).fetchone()
    assert booked == {"account": "outside_payments", "amount_cents": 3000}
    assert stripe.created("/v1/refunds") == []  # nothing went through Stripe
    # Spent money cannot be paid out twice: a second refused refund with nothing left to pay from.
    other = _refused_refund(stripe, owner, user, "pi_bank_2")
    _cell(user, {"action": "withdraw", "amount_cents": 3000, "idempotency_key": "wd-spent"})
    short = review(token, {**body, "money_item_id": str(other["id"])})
    assert short.status_code == 400 and "insufficient funds" in short.json["error"]["message"]


def test_a_retried_refund_a_stripe_outage_stops_leaves_planned_and_is_resent(stripe: Any, owner: Conn) -> None:
    from shared.money import holding_cell

    user = f.user(owner, "patient")
    item = _refused_refund(stripe, owner, user, "pi_outage")
    _, token = operator_token(owner)
    stripe.fail_next("/v1/refunds", 503, 503, 503)  # the SDK's own retries meet the outage too
    body = {
        "action": "resolve_money",
        "money_item_id": str(item["id"]),
        "reason": "new card on file",
        "resolution": "retry_refund",
    }
    assert review(token, body).status_code == 200  # resolved: the refund is planned, its money held back
    assert stripe.created("/v1/refunds") == [] and _available(owner, user) == 0
    owner.execute("update public.withdrawal_refunds set created_at = now() - interval '5 minutes'")
    assert holding_cell.resume_planned_refunds() == 1
    [refund] = stripe.created("/v1/refunds")
    assert refund.form["amount"] == "3000"
    assert holding_cell.resume_planned_refunds() == 0  # once
