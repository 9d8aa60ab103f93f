"""The holding cell: deposits through Stripe PaymentIntents, withdrawals as
Stripe refunds of the user's deposits (oldest first), and the balance.

Money only becomes available when Stripe's signed webhook says a payment
succeeded (see stripe_events.py); nothing here trusts the client about money.
"""

from __future__ import annotations

import time
import uuid
from decimal import ROUND_CEILING, Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from shared import db
from shared.config import get_settings
from shared.errors import ApiError, bad_request
from shared.log import get_logger
from shared.providers import stripe_api
from shared.providers.errors import ProviderRefused, ProviderUnavailable

_logger = get_logger("threativator.holding_cell")

# Far above any deposit bound; keeps every amount inside PostgreSQL's bigint.
MAX_CENTS = 1_000_000_000

IdempotencyKey = Annotated[str, Field(min_length=8, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]


class DepositRequest(BaseModel):
    action: Literal["deposit"]
    amount_cents: int = Field(gt=0, le=MAX_CENTS, description="Amount to add, in cents")
    idempotency_key: IdempotencyKey | None = None


class WithdrawRequest(BaseModel):
    action: Literal["withdraw"]
    amount_cents: int = Field(gt=0, le=MAX_CENTS, description="Amount to refund to the card, in cents")
    idempotency_key: IdempotencyKey | None = None


class BalanceRequest(BaseModel):
    action: Literal["balance"]


HoldingCellRequest = Annotated[DepositRequest | WithdrawRequest | BalanceRequest, Field(discriminator="action")]


class Balance(BaseModel):
    available_cents: int
    reserved_cents: int
    forfeited_cents: int
    balance_cents: int


class FundingFee(BaseModel):
    payer: Literal["user", "platform"] = Field(description="FUNDING_FEE_PAYER: who pays Stripe's processing fee")
    fee_cents: int = Field(description="What the user pays on top of the stake (0 when the platform pays)")
    charge_cents: int = Field(description="What the card is charged: the amount plus the fee")
    formula: str = Field(description="How the fee is computed, in words")


class DepositResponse(BaseModel):
    payment_intent_id: str
    client_secret: str
    amount_cents: int = Field(description="What the holding cell is credited: the whole amount asked for")
    funding_fee: FundingFee
    status: str


def funding_fee(amount_cents: int) -> FundingFee:
    """The fee a deposit of `amount_cents` carries. With FUNDING_FEE_PAYER=user the card is charged
    ceil((amount + fixed) / (1 - percent/100)), the smallest charge after whose Stripe fee
    (percent of the charge, rounded, plus fixed) the platform keeps the whole amount."""
    settings = get_settings()
    percent, fixed = settings.stripe_fee_percent, settings.stripe_fee_fixed_cents
    if settings.funding_fee_payer == "platform":
        return FundingFee(
            payer="platform",
            fee_cents=0,
            charge_cents=amount_cents,
            formula=f"none: Threativator pays Stripe's fee ({percent}% + {fixed}¢)",
        )
    charge = int(((Decimal(amount_cents + fixed)) / (1 - percent / 100)).to_integral_value(rounding=ROUND_CEILING))
    return FundingFee(
        payer="user",
        fee_cents=charge - amount_cents,
        charge_cents=charge,
        formula=f"charge = ceil((amount + {fixed}¢) / (1 - {percent}%)); fee = charge - amount",
    )


class RefundView(BaseModel):
    amount_cents: int
    status: str


class WithdrawResponse(BaseModel):
    withdrawal_id: UUID
    amount_cents: int
    status: Literal["processing", "completed", "partially_failed", "failed"]
    refunds: list[RefundView]
    balance: Balance


def balance(user_id: UUID) -> Balance:
    """The user's totals, read as the user (RLS applies)."""
    with db.as_user(user_id) as conn:
        row = conn.execute(
            "select available_cents, reserved_cents, forfeited_cents from public.holding_cells where user_id = %s",
            [user_id],
        ).fetchone()
    row = row or {"available_cents": 0, "reserved_cents": 0, "forfeited_cents": 0}
    return Balance(**row, balance_cents=row["available_cents"] + row["reserved_cents"])


def _customer_id(user_id: UUID, email: str | None) -> str | None:
    with db.as_service() as conn:
        row = conn.execute("select stripe_customer_id, email from public.users where id = %s", [user_id]).fetchone()
    if row is None:
        raise ApiError(404, "not_found", "no Threativator account for this token")
    if row["stripe_customer_id"]:
        return str(row["stripe_customer_id"])
    customer = stripe_api.ensure_customer(user_id=str(user_id), email=row["email"] or email or "")
    if customer is None:
        return None  # dry mode: no customer to keep
    with db.as_service() as conn:
        conn.execute(
            "update public.users set stripe_customer_id = coalesce(stripe_customer_id, %s) where id = %s",
            [customer, user_id],
        )
        stored = conn.execute("select stripe_customer_id from public.users where id = %s", [user_id]).fetchone()
    return str(stored["stripe_customer_id"]) if stored else customer


def deposit(user_id: UUID, email: str | None, request: DepositRequest) -> DepositResponse:
    """Create a PaymentIntent the frontend confirms with Stripe.js."""
    settings = get_settings()
    if not settings.deposit_min_cents <= request.amount_cents <= settings.deposit_max_cents:
        raise bad_request(
            f"amount_cents must be between {settings.deposit_min_cents} and {settings.deposit_max_cents}",
            [{"field": "amount_cents", "message": "out of range", "type": "range"}],
            code="invalid_body",
        )
    key = request.idempotency_key or uuid.uuid4().hex
    fee = funding_fee(request.amount_cents)
    try:
        intent = stripe_api.create_payment_intent(
            amount_cents=fee.charge_cents,
            funding_fee_cents=fee.fee_cents,
            customer=_customer_id(user_id, email),
            user_id=str(user_id),
            idempotency_key=f"deposit-{user_id}-{key}",
            summary=f"${request.amount_cents / 100:,.2f} deposit",
        )
    except (ProviderUnavailable, ProviderRefused) as error:
        raise stripe_api.as_api_error(error) from None
    if intent.client_secret is None:
        raise ApiError(502, "payment_provider_refused", "the payment provider returned no client secret")
    _logger.info(
        "deposit intent created",
        extra={"fields": {"user_id": str(user_id), "amount_cents": request.amount_cents}},
    )
    return DepositResponse(
        payment_intent_id=intent.id,
        client_secret=intent.client_secret,
        amount_cents=request.amount_cents,
        funding_fee=fee,
        status=intent.status,
    )


# Without a client key, the same amount asked for within one minute is the same withdrawal:
# a double click or a network retry never refunds twice.
_WINDOW_SECONDS = 60


def withdraw(user_id: UUID, request: WithdrawRequest) -> WithdrawResponse:
    """Refund available money to the card, never more than is available, idempotently."""
    key = request.idempotency_key or f"window:{request.amount_cents}:{int(time.time() // _WINDOW_SECONDS)}"
    with db.as_service() as conn:
        row = conn.execute("select app.begin_withdrawal(%s, %s, %s) as id", [user_id, request.amount_cents, key])
        withdrawal_id = UUID(str(row.fetchone()["id"]))  # type: ignore[index]
    send_refunds(user_id, withdrawal_id)
    return _withdrawal_view(user_id, withdrawal_id)


def send_refunds(user_id: UUID, withdrawal_id: UUID) -> None:
    with db.as_service() as conn:
        planned = conn.execute(
            "select id, payment_intent_id, amount_cents from public.withdrawal_refunds"
            " where withdrawal_id = %s and status = 'planned' order by position",
            [withdrawal_id],
        ).fetchall()
    for refund_row in planned:
        try:
            refund = stripe_api.create_refund(
                payment_intent=refund_row["payment_intent_id"],
                amount_cents=refund_row["amount_cents"],
                metadata={"withdrawal_refund_id": str(refund_row["id"]), "user_id": str(user_id)},
                idempotency_key=f"refund-{refund_row['id']}",
            )
        except ProviderUnavailable:
            # Left planned: the same request again, or check_deadlines a minute later, resumes here with the same keys.
            _logger.warning("refund deferred", extra={"fields": {"withdrawal_id": str(withdrawal_id)}})
            continue
        except ProviderRefused as refused:
            _record_refund(refund_row["id"], "failed", None, f"stripe:{refused.code}")
            continue
        status = refund.status if refund.status in ("pending", "succeeded", "failed", "canceled") else "pending"
        _record_refund(refund_row["id"], status, refund.id, None)


# A planned refund younger than this may still be on its way in the request that planned it.
RESUME_PLANNED_AFTER = "1 minute"


def refund_stripe_ids(withdrawal_refund_id: str) -> list[str]:
    """The PaymentIntent a planned refund returns money to, and the refund Stripe made, if any."""
    try:
        row_id = UUID(withdrawal_refund_id)
    except ValueError:
        return []
    with db.as_service() as conn:
        row = conn.execute(
            "select payment_intent_id, stripe_refund_id from public.withdrawal_refunds where id = %s", [row_id]
        ).fetchone()
    return [v for v in (row["payment_intent_id"], row["stripe_refund_id"]) if v] if row else []


def resume_planned_refunds(limit: int = 50) -> int:
    """check_deadlines: resend refunds a Stripe outage left planned, with their own idempotency keys.

    Without this a refund planned during an outage waited for its user to repeat the request,
    and a leaving account (which repeats nothing) waited forever. Returns the withdrawals resumed."""
    with db.as_service() as conn:
        due = conn.execute(
            "select distinct on (withdrawal_id) withdrawal_id, user_id from public.withdrawal_refunds"
            " where status = 'planned' and created_at < now() - %s::interval"
            " order by withdrawal_id limit %s",
            [RESUME_PLANNED_AFTER, limit],
        ).fetchall()
    resumed = 0
    for row in due:
        try:
            send_refunds(row["user_id"], row["withdrawal_id"])
            resumed += 1
        except Exception:
            # One withdrawal's fault is its own: the others are resumed in this pass.
            _logger.exception("refund resume failed", extra={"fields": {"withdrawal_id": str(row["withdrawal_id"])}})
    return resumed


def _record_refund(row_id: Any, status: str, refund_id: str | None, error: str | None) -> None:
    with db.as_service() as conn:
        conn.execute("select app.record_refund(%s, %s, %s, %s)", [row_id, status, refund_id, error])


def _withdrawal_view(user_id: UUID, withdrawal_id: UUID) -> WithdrawResponse:
    with db.as_user(user_id) as conn:
        head = conn.execute("select amount_cents from public.withdrawals where id = %s", [withdrawal_id]).fetchone()
        refunds = conn.execute(
            "select amount_cents, status::text as status from public.withdrawal_refunds"
            " where withdrawal_id = %s order by position",
            [withdrawal_id],
        ).fetchall()
    if head is None:
        raise ApiError(404, "not_found", "withdrawal not found")
    statuses = {r["status"] for r in refunds}
    if statuses <= {"succeeded"}:
        overall = "completed"
    elif statuses <= {"failed", "canceled"}:
        overall = "failed"
    elif statuses & {"planned", "pending"}:
        overall = "processing"
    else:
        overall = "partially_failed"
    return WithdrawResponse(
        withdrawal_id=withdrawal_id,
        amount_cents=head["amount_cents"],
        status=overall,  # type: ignore[arg-type]
        refunds=[RefundView(**r) for r in refunds],
        balance=balance(user_id),
    )
