"""The holding cell and the Stripe webhook, against a local Stripe stand-in, with
webhooks signed the way Stripe signs them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from shared.auth import mint_token
from tests import factories as f
from tests.fakes import FakeStripe, stripe_event, stripe_signature
from tests.http_helpers import bearer, client

WEBHOOK_SECRET = "whsec_test_secret_for_threativator"
Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def stripe(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, database: str) -> Iterator[FakeStripe]:
    monkeypatch.setenv("STRIPE_API_BASE", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_threativator")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    yield FakeStripe(server=httpserver).install()


@pytest.fixture
def alice(owner: Conn) -> UUID:
    return f.user(owner, "alice")


def _cell(user: UUID, body: dict[str, Any]) -> Any:
    return client("holding_cell").post("/", json=body, headers=bearer(mint_token(str(user))))


def _webhook(payload: bytes, signature: str | None) -> Any:
    headers = {"Stripe-Signature": signature} if signature is not None else {}
    return client("stripe_webhook").post("/", data=payload, content_type="application/json", headers=headers)


def _succeeded(intent_id: str, user: UUID, amount: int, currency: str = "usd") -> dict[str, Any]:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": currency,
        "status": "succeeded",
        "metadata": {"user_id": str(user), "purpose": "holding_cell_deposit"},
    }


def _pay(user: UUID, intent_id: str, amount: int, event_id: str | None = None) -> Any:
    payload = stripe_event("payment_intent.succeeded", _succeeded(intent_id, user, amount), event_id)
    return _webhook(payload, stripe_signature(payload, WEBHOOK_SECRET))


def _balance(user: UUID) -> dict[str, int]:
    response = _cell(user, {"action": "balance"})
    assert response.status_code == 200, response.json
    return dict(response.json)


def test_deposit_becomes_available_only_after_signed_webhook(stripe: FakeStripe, alice: UUID) -> None:
    response = _cell(alice, {"action": "deposit", "amount_cents": 5000, "idempotency_key": "dep-00000001"})
    assert response.status_code == 200, response.json
    assert response.json["client_secret"].startswith(response.json["payment_intent_id"])
    intent = stripe.created("/v1/payment_intents")[0]
    # The card is charged the amount plus the funding fee shown (FUNDING_FEE_PAYER=user, the default).
    fee = response.json["funding_fee"]
    assert fee["payer"] == "user" and fee["charge_cents"] == 5000 + fee["fee_cents"] and fee["fee_cents"] > 0
    assert intent.form["amount"] == str(fee["charge_cents"]) and intent.form["currency"] == "usd"
    assert intent.form["metadata[funding_fee_cents]"] == str(fee["fee_cents"])
    assert intent.form["metadata[user_id]"] == str(alice)
    assert intent.headers["Idempotency-Key"] == f"deposit-{alice}-dep-00000001"
    assert stripe.created("/v1/customers")[0].headers["Idempotency-Key"] == f"customer-{alice}"
    assert _balance(alice)["available_cents"] == 0

    webhook = _pay(alice, response.json["payment_intent_id"], 5000)
    assert webhook.status_code == 200
    assert webhook.json["applied"] == "deposit_credited"
    assert _balance(alice) == {
        "available_cents": 5000,
        "reserved_cents": 0,
        "forfeited_cents": 0,
        "balance_cents": 5000,
    }


def test_deposit_reuses_the_stripe_customer(stripe: FakeStripe, alice: UUID, owner: Conn) -> None:
    for key in ("dep-00000001", "dep-00000002"):
        assert _cell(alice, {"action": "deposit", "amount_cents": 1000, "idempotency_key": key}).status_code == 200
    assert len(stripe.created("/v1/customers")) == 1
    customer = owner.execute("select stripe_customer_id from public.users where id = %s", [alice]).fetchone()
    assert customer == {"stripe_customer_id": "cus_1"}


@pytest.mark.parametrize("amount", [0, -5, 499, 1_000_001, "ten"])
def test_deposit_bad_amount_is_400(stripe: FakeStripe, alice: UUID, amount: Any) -> None:
    response = _cell(alice, {"action": "deposit", "amount_cents": amount})
    assert response.status_code == 400
    assert response.json["error"]["details"][0]["field"].endswith("amount_cents")
    assert stripe.created("/v1/payment_intents") == []


def test_holding_cell_unknown_action_is_400(stripe: FakeStripe, alice: UUID) -> None:
    response = _cell(alice, {"action": "steal", "amount_cents": 100})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_body"


def test_webhook_redelivery_changes_nothing(stripe: FakeStripe, alice: UUID) -> None:
    assert _pay(alice, "pi_once", 2500, event_id="evt_1").json["applied"] == "deposit_credited"
    again = _pay(alice, "pi_once", 2500, event_id="evt_1")
    assert again.status_code == 200 and again.json["duplicate"] is True
    # Another event about the same PaymentIntent credits nothing more either.
    assert _pay(alice, "pi_once", 2500, event_id="evt_2").status_code == 200
    assert _balance(alice)["available_cents"] == 2500


@pytest.mark.parametrize("case", ["forged", "stale", "missing", "other_secret", "tampered"])
def test_webhook_bad_signature_is_400_and_changes_nothing(
    stripe: FakeStripe, alice: UUID, owner: Conn, case: str
) -> None:
    payload = stripe_event("payment_intent.succeeded", _succeeded("pi_forged", alice, 100_000))
    signatures = {
        "forged": "t=1,v1=deadbeef",
        "stale": stripe_signature(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 3600),
        "missing": None,
        "other_secret": stripe_signature(payload, "whsec_attacker"),
        "tampered": stripe_signature(payload.replace(b"100000", b"100001"), WEBHOOK_SECRET),
    }
    response = _webhook(payload, signatures[case])
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_signature"
    assert owner.execute("select count(*) as n from public.stripe_events").fetchone() == {"n": 0}
    assert _balance(alice)["available_cents"] == 0


def test_webhook_wrong_currency_or_unknown_user_is_not_credited(stripe: FakeStripe, alice: UUID) -> None:
    payload = stripe_event("payment_intent.succeeded", _succeeded("pi_eur", alice, 900, currency="eur"))
    assert _webhook(payload, stripe_signature(payload, WEBHOOK_SECRET)).json["applied"] == "unmatched"
    stranger = _succeeded("pi_x", UUID(int=7), 900)
    payload = stripe_event("payment_intent.succeeded", stranger)
    assert _webhook(payload, stripe_signature(payload, WEBHOOK_SECRET)).json["applied"] == "unmatched"
    assert _balance(alice)["available_cents"] == 0


def test_withdraw_refunds_oldest_deposits_first(stripe: FakeStripe, alice: UUID) -> None:
    _pay(alice, "pi_old", 1000)
    _pay(alice, "pi_new", 3000)
    response = _cell(alice, {"action": "withdraw", "amount_cents": 1500, "idempotency_key": "wd-00000001"})
    assert response.status_code == 200, response.json
    assert response.json["status"] == "completed"
    refunds = stripe.created("/v1/refunds")
    assert [(r.form["payment_intent"], r.form["amount"]) for r in refunds] == [
        ("pi_old", "1000"),
        ("pi_new", "500"),
    ]
    assert all(r.headers["Idempotency-Key"].startswith("refund-") for r in refunds)
    assert _balance(alice)["available_cents"] == 2500


def test_withdraw_is_idempotent(stripe: FakeStripe, alice: UUID) -> None:
    _pay(alice, "pi_1", 4000)
    first = _cell(alice, {"action": "withdraw", "amount_cents": 1000, "idempotency_key": "wd-same-key"})
    second = _cell(alice, {"action": "withdraw", "amount_cents": 1000, "idempotency_key": "wd-same-key"})
    assert first.json["withdrawal_id"] == second.json["withdrawal_id"]
    # Without a key, a repeat within the minute is the same withdrawal too.
    third = _cell(alice, {"action": "withdraw", "amount_cents": 500})
    fourth = _cell(alice, {"action": "withdraw", "amount_cents": 500})
    assert third.json["withdrawal_id"] == fourth.json["withdrawal_id"]
    assert len(stripe.created("/v1/refunds")) == 2
    assert _balance(alice)["available_cents"] == 2500


def test_withdraw_more_than_available_is_refused(stripe: FakeStripe, alice: UUID, owner: Conn) -> None:
    _pay(alice, "pi_1", 10_000)
    f.goal(owner, alice, stake="80.00", fund=False)  # 8,000 reserved, 2,000 available
    response = _cell(alice, {"action": "withdraw", "amount_cents": 2001})
    assert response.status_code == 400
    assert response.json["error"]["message"] == "the amount is more than your available balance"
    assert stripe.created("/v1/refunds") == []
    assert _balance(alice) == {
        "available_cents": 2000,
        "reserved_cents": 8000,
        "forfeited_cents": 0,
        "balance_cents": 10_000,
    }


def test_withdraw_transient_stripe_failure_resumes_with_same_key(stripe: FakeStripe, alice: UUID) -> None:
    _pay(alice, "pi_1", 3000)
    stripe.fail_next("/v1/refunds", 500, 500, 500)  # the SDK's own retries are exhausted
    first = _cell(alice, {"action": "withdraw", "amount_cents": 3000, "idempotency_key": "wd-retry-1"})
    assert first.status_code == 200 and first.json["status"] == "processing"
    again = _cell(alice, {"action": "withdraw", "amount_cents": 3000, "idempotency_key": "wd-retry-1"})
    assert again.json["status"] == "completed"
    assert len(stripe.created("/v1/refunds")) == 1
    assert _balance(alice)["available_cents"] == 0


def test_withdraw_refund_refused_by_stripe_returns_the_money(stripe: FakeStripe, alice: UUID) -> None:
    _pay(alice, "pi_1", 3000)
    stripe.fail_next("/v1/refunds", 400)
    response = _cell(alice, {"action": "withdraw", "amount_cents": 3000, "idempotency_key": "wd-refused"})
    assert response.json["status"] == "failed"
    assert _balance(alice)["available_cents"] == 3000


def test_refund_events_move_forward_only_and_failures_reverse_once(
    stripe: FakeStripe, alice: UUID, owner: Conn
) -> None:
    stripe.refund_status = "pending"
    _pay(alice, "pi_1", 3000)
    response = _cell(alice, {"action": "withdraw", "amount_cents": 3000, "idempotency_key": "wd-events"})
    assert response.json["status"] == "processing"
    row = owner.execute("select id, stripe_refund_id from public.withdrawal_refunds").fetchone()
    assert row is not None
    refund = {
        "id": row["stripe_refund_id"],
        "object": "refund",
        "amount": 3000,
        "payment_intent": "pi_1",
        "metadata": {"withdrawal_refund_id": str(row["id"])},
    }
    failed = stripe_event("refund.failed", {**refund, "status": "failed", "failure_reason": "expired_card"})
    late_pending = stripe_event("refund.updated", {**refund, "status": "pending"})
    for payload in (failed, late_pending, failed):
        assert _webhook(payload, stripe_signature(payload, WEBHOOK_SECRET)).status_code == 200
    status = owner.execute("select status::text from public.withdrawal_refunds").fetchone()
    assert status == {"status": "failed"}
    assert _balance(alice)["available_cents"] == 3000


def test_external_refund_event_is_recorded_against_the_deposit(stripe: FakeStripe, alice: UUID) -> None:
    _pay(alice, "pi_1", 3000)
    refund = {
        "id": "re_dashboard",
        "object": "refund",
        "amount": 1200,
        "payment_intent": "pi_1",
        "status": "succeeded",
        "metadata": {},
    }
    payload = stripe_event("refund.created", refund)
    assert _webhook(payload, stripe_signature(payload, WEBHOOK_SECRET)).json["applied"] == ("external_refund_recorded")
    assert _balance(alice)["available_cents"] == 1800


def test_reversal_of_a_transfer_nobody_knows_is_booked_for_the_operators(stripe: FakeStripe, owner: Conn) -> None:
    payload = stripe_event(
        "transfer.reversed",
        {"id": "tr_9", "object": "transfer", "amount_reversed": 500, "metadata": {"consequence_id": "c1"}},
    )
    assert _webhook(payload, stripe_signature(payload, WEBHOOK_SECRET)).json["applied"] == "transfer_reversal_booked"
    # Stripe has the money back: it is owed to a charity until an operator looks.
    row = owner.execute("select account::text, amount_cents from public.platform_entries").fetchone()
    assert row == {"account": "charity_payable", "amount_cents": 500}
    item = owner.execute("select kind::text, source_id, cents from public.money_items").fetchone()
    assert item == {"kind": "transfer_reversed", "source_id": "tr_9:upto:500", "cents": 500}


def test_activation_reserves_stake_and_refuses_when_short(owner: Conn, alice: UUID) -> None:
    f.fund_user(owner, alice, 5000)
    goal = f.goal(owner, alice, stake="60.00", activate=False)
    with pytest.raises(psycopg.Error, match="available balance is less than the stake"):
        owner.execute("select app.activate_goal(%s)", [goal])
    f.fund_user(owner, alice, 1000)
    owner.execute("select app.activate_goal(%s)", [goal])
    cell = owner.execute(
        "select available_cents, reserved_cents from public.holding_cells where user_id = %s", [alice]
    ).fetchone()
    assert cell == {"available_cents": 0, "reserved_cents": 6000}


def test_completed_goal_releases_its_stake_exactly_once(owner: Conn, alice: UUID) -> None:
    goal = f.goal(owner, alice, stake="30.00", checkpoints=0)
    final = f.checkpoint_ids(owner, goal)[0]
    submission = f.submission(owner, alice, final)
    owner.execute("select app.record_grade(%s, 'passed')", [submission])
    owner.execute("select app.record_grade(%s, 'passed', p_force => true)", [submission])
    owner.execute("select app.release_stake(%s)", [goal])
    cell = owner.execute(
        "select available_cents, reserved_cents from public.holding_cells where user_id = %s", [alice]
    ).fetchone()
    assert cell == {"available_cents": 3000, "reserved_cents": 0}
    releases = owner.execute("select count(*) as n from public.ledger_entries where entry_type = 'stake_released'")
    assert releases.fetchone() == {"n": 1}


def test_dry_stripe_in_development_records_instead_of_sending(
    monkeypatch: pytest.MonkeyPatch, database: str, alice: UUID, owner: Conn
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    deposit = _cell(alice, {"action": "deposit", "amount_cents": 2500, "idempotency_key": "dry-key-001"})
    assert deposit.status_code == 200 and deposit.json["payment_intent_id"].startswith("dry_pi_")
    owner.execute("select app.credit_deposit(%s, 2500, %s)", [alice, deposit.json["payment_intent_id"]])
    withdraw = _cell(alice, {"action": "withdraw", "amount_cents": 1000, "idempotency_key": "dry-key-002"})
    assert withdraw.json["status"] == "completed"
    outbox = owner.execute("select channel, summary from public.dev_outbox order by id").fetchall()
    assert outbox == [
        {"channel": "payment_intent", "summary": "$25.00 deposit"},
        {"channel": "refund", "summary": "$10.00 refund"},
    ]


def test_production_without_stripe_key_is_misconfigured_not_dry(
    monkeypatch: pytest.MonkeyPatch, database: str, alice: UUID
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    response = _cell(alice, {"action": "deposit", "amount_cents": 2500})
    assert response.status_code == 500 and response.json["error"]["code"] == "misconfigured"


@pytest.mark.parametrize("action", ["deposit", "withdraw"])
def test_amounts_beyond_bigint_are_400_not_500(stripe: FakeStripe, alice: UUID, action: str) -> None:
    response = _cell(alice, {"action": action, "amount_cents": 2**70})
    assert response.status_code == 400
    assert response.json["error"]["details"][0]["field"].endswith("amount_cents")


def test_withdrawal_key_reused_for_another_amount_is_422(stripe: FakeStripe, alice: UUID) -> None:
    _pay(alice, "pi_1", 4000)
    first = _cell(alice, {"action": "withdraw", "amount_cents": 1000, "idempotency_key": "wd-reused"})
    assert first.status_code == 200
    reused = _cell(alice, {"action": "withdraw", "amount_cents": 3000, "idempotency_key": "wd-reused"})
    assert reused.status_code == 422
    assert reused.json["error"]["code"] == "idempotency_key_reused"
    assert len(stripe.created("/v1/refunds")) == 1
    assert _balance(alice)["available_cents"] == 3000


def test_concurrent_withdrawals_with_one_key_get_one_result(stripe: FakeStripe, alice: UUID) -> None:
    import threading

    _pay(alice, "pi_1", 4000)
    stripe.delay_each = 0.05
    answers: list[Any] = []
    body = {"action": "withdraw", "amount_cents": 1000, "idempotency_key": "wd-racing"}
    threads = [threading.Thread(target=lambda: answers.append(_cell(alice, body))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok = [a for a in answers if a.status_code == 200]
    assert len({a.json["withdrawal_id"] for a in ok}) == 1
    for answer in answers:
        assert answer.status_code in (200, 409), answer.json
        text = json.dumps(answer.json)
        assert "withdrawals" not in text and "_key" not in text.replace("idempotency_key", "")
    assert _balance(alice)["available_cents"] == 3000


def test_deposit_key_reused_for_another_amount_is_422(stripe: FakeStripe, alice: UUID) -> None:
    first = _cell(alice, {"action": "deposit", "amount_cents": 3000, "idempotency_key": "dep-reused"})
    assert first.status_code == 200, first.json
    again = _cell(alice, {"action": "deposit", "amount_cents": 3000, "idempotency_key": "dep-reused"})
    assert again.json["payment_intent_id"] == first.json["payment_intent_id"]
    reused = _cell(alice, {"action": "deposit", "amount_cents": 5000, "idempotency_key": "dep-reused"})
    assert reused.status_code == 422 and reused.json["error"]["code"] == "idempotency_key_reused"
