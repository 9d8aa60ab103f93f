"""Stripe, through the official SDK's StripeClient, pointed at STRIPE_API_BASE.

The only module that imports `stripe`. Every call here answers a plain value or
raises ProviderUnavailable (worth retrying) or ProviderRefused (permanent).
Without STRIPE_SECRET_KEY outside production, calls that move money are
recorded in the development outbox instead (dry mode, decided here once).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from shared.config import get_settings
from shared.errors import ApiError
from shared.providers import once_per_process
from shared.providers.errors import ProviderRefused, ProviderUnavailable

if TYPE_CHECKING:
    import stripe

# Stripe retries connection errors, 409 and 5xx itself, reusing the idempotency key.
MAX_NETWORK_RETRIES = 2
T = TypeVar("T")


class CardDeclined(ProviderRefused):
    """The customer's card was declined."""


class InvalidSignature(ValueError):
    """A webhook payload whose Stripe-Signature does not verify (or is stale)."""


@once_per_process
def client() -> stripe.StripeClient:
    import stripe

    settings = get_settings()
    base = settings.stripe_api_base
    return stripe.StripeClient(
        settings.require("stripe_secret_key"),
        base_addresses={"api": base, "connect": base, "files": base},
        max_network_retries=MAX_NETWORK_RETRIES,
        http_client=stripe.new_default_http_client(timeout=settings.stripe_timeout_seconds),
    )


def dry() -> bool:
    """No Stripe key outside production: record what would have been sent instead of sending it."""
    settings = get_settings()
    return settings.stripe_secret_key is None and settings.providers_dry()


def _call(request: Callable[[], T]) -> T:
    """Run one SDK request; Stripe's errors become the providers' pair."""
    import stripe

    try:
        return request()
    except stripe.StripeError as error:
        status = getattr(error, "http_status", None)
        if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError) or status is None or status >= 500:
            raise ProviderUnavailable(f"stripe: {type(error).__name__}") from None
        code = getattr(error, "code", None)
        if isinstance(error, stripe.IdempotencyError):
            raise ProviderRefused(
                "stripe: idempotency key reused with other parameters", "idempotency_key_reused"
            ) from None
        if isinstance(error, stripe.CardError):
            raise CardDeclined("the card was declined", code) from None
        raise ProviderRefused(f"stripe refused the request: {code or type(error).__name__}", code) from None


def as_api_error(error: ProviderUnavailable | ProviderRefused) -> ApiError:
    """Stripe's answer as our error shape; never echoes Stripe's message, which may hold data."""
    if isinstance(error, ProviderUnavailable):
        return ApiError(
            503,
            "payment_provider_unavailable",
            "the payment provider is unavailable; retry shortly",
            headers={"Retry-After": "10"},
        )
    if error.code == "idempotency_key_reused":
        return ApiError(
            422, "idempotency_key_reused", "this idempotency key was already used with other values; use a new key"
        )
    if isinstance(error, CardDeclined):
        return ApiError(402, "card_declined", "the card was declined", {"decline_code": error.code})
    return ApiError(502, "payment_provider_refused", "the payment provider refused the request", {"code": error.code})


def _outbox(channel: str, recipient: str, summary: str, payload: dict[str, Any]) -> None:
    from shared.providers import outbox

    outbox.record(channel, recipient, summary, payload)


# -----------------------------------------------------------------------------
# Money out: transfers to charities
# -----------------------------------------------------------------------------
def create_transfer(
    *, amount_cents: int, charity: str, charity_label: str, group: str, metadata: dict[str, str], idempotency_key: str
) -> str:
    """Transfer from the platform balance to the charity's Connect account; returns the transfer id."""
    if dry():
        _outbox(
            "transfer",
            charity,
            f"${amount_cents / 100:,.2f} to {charity_label}",
            {"amount_cents": amount_cents, "idempotency_key": idempotency_key, **metadata},
        )
        return f"dry_tr_{uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key).hex[:16]}"
    settings = get_settings()
    account = settings.charity_accounts.get(charity)
    if not account:
        from shared.config import ConfigError

        raise ConfigError(f"CHARITY_ACCOUNTS has no Stripe account for {charity}")
    transfer = _call(
        lambda: client().v1.transfers.create(
            {
                "amount": amount_cents,
                "currency": settings.currency,
                "destination": account,
                "transfer_group": group,
                "metadata": metadata,
            },
            {"idempotency_key": idempotency_key},
        )
    )
    return str(transfer.id)


def find_transfer(*, group: str, consequence_id: str) -> str | None:
    """A transfer an earlier attempt made for this consequence (found by group and metadata), if any."""
    if dry():
        return None
    transfers = _call(lambda: client().v1.transfers.list({"transfer_group": group, "limit": 100}))
    for earlier in transfers.data:
        if (earlier.to_dict().get("metadata") or {}).get("consequence_id") == consequence_id:
            return str(earlier.id)
    return None


# -----------------------------------------------------------------------------
# Money in and back: customers, PaymentIntents, refunds
# -----------------------------------------------------------------------------
def ensure_customer(*, user_id: str, email: str) -> str | None:
    """Create the user's Stripe customer (None in dry mode); the key makes concurrent first deposits create one."""
    if dry():
        return None
    customer = _call(
        lambda: client().v1.customers.create(
            {"email": email, "metadata": {"user_id": user_id}}, {"idempotency_key": f"customer-{user_id}"}
        )
    )
    return str(customer.id)


@dataclass(frozen=True)
class Intent:
    id: str
    client_secret: str | None
    status: str


def create_payment_intent(
    *,
    amount_cents: int,
    customer: str | None,
    user_id: str,
    idempotency_key: str,
    summary: str,
    funding_fee_cents: int = 0,
) -> Intent:
    """A deposit's PaymentIntent for `amount_cents` (the stake plus any funding fee, which the
    metadata carries so the webhook credits the stake whole)."""
    if dry():
        intent_id = f"dry_pi_{uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key).hex[:20]}"
        _outbox("payment_intent", user_id, summary, {"payment_intent": intent_id, "amount_cents": amount_cents})
        return Intent(intent_id, f"{intent_id}_secret_dry", "requires_payment_method")
    intent = _call(
        lambda: client().v1.payment_intents.create(
            {
                "amount": amount_cents,
                "currency": get_settings().currency,
                "customer": customer or "",
                "automatic_payment_methods": {"enabled": True},
                "metadata": {
                    "user_id": user_id,
                    "purpose": "holding_cell_deposit",
                    "funding_fee_cents": str(funding_fee_cents),
                },
            },
            {"idempotency_key": idempotency_key},
        )
    )
    return Intent(str(intent.id), intent.client_secret, str(intent.status))


@dataclass(frozen=True)
class Refund:
    id: str
    status: str


def create_refund(*, payment_intent: str, amount_cents: int, metadata: dict[str, str], idempotency_key: str) -> Refund:
    if dry():
        _outbox(
            "refund",
            metadata.get("user_id", ""),
            f"${amount_cents / 100:,.2f} refund",
            {"payment_intent": payment_intent, "amount_cents": amount_cents},
        )
        return Refund(f"dry_re_{uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key).hex[:16]}", "succeeded")
    refund = _call(
        lambda: client().v1.refunds.create(
            {"payment_intent": payment_intent, "amount": amount_cents, "metadata": metadata},
            {"idempotency_key": idempotency_key},
        )
    )
    return Refund(str(refund.id), str(refund.status))


# -----------------------------------------------------------------------------
# Reading an object back, for the operators
# -----------------------------------------------------------------------------
# The objects an operator may need to see, by their id's prefix.
RETRIEVABLE = {"pi_": "payment_intents", "re_": "refunds", "tr_": "transfers", "txn_": "balance_transactions"}


def retrieve(object_id: str) -> dict[str, Any] | None:
    """The Stripe object an id names, as Stripe has it now; None in dry mode or for an id of a kind
    we do not read. Raises the providers' pair (a missing object is ProviderRefused)."""
    service = next((name for prefix, name in RETRIEVABLE.items() if object_id.startswith(prefix)), None)
    if service is None or dry():
        return None
    found = _call(lambda: getattr(client().v1, service).retrieve(object_id))
    return dict(found.to_dict())


# -----------------------------------------------------------------------------
# Webhooks
# -----------------------------------------------------------------------------
def verify_event(payload: bytes, signature: str) -> dict[str, Any]:
    """The event, once Stripe-Signature verifies against STRIPE_WEBHOOK_SECRET within the tolerance."""
    import stripe

    settings = get_settings()
    secret = settings.require("stripe_webhook_secret")
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature, secret, settings.stripe_webhook_tolerance_seconds
        )
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
        raise InvalidSignature("invalid or stale Stripe signature") from None
    if not isinstance(event, dict):
        raise InvalidSignature("not a Stripe event")
    return event


# -----------------------------------------------------------------------------
# Reconciliation and the webhook endpoint
# -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BalanceTransaction:
    id: str
    type: str
    amount: int
    fee: int
    created: int
    source: str | None
    payment_intent: str | None  # a charge's PaymentIntent, read from the expanded source


def balance_transactions(*, created_from: int, created_until: int) -> list[BalanceTransaction]:
    """Every balance transaction created in [from, until), pages followed, each charge's source expanded."""
    if dry():
        return []
    page = _call(
        lambda: client().v1.balance_transactions.list(
            {"created": {"gte": created_from, "lt": created_until}, "limit": 100, "expand": ["data.source"]}
        )
    )
    found = []
    for txn in _call(lambda: list(page.auto_paging_iter())):
        raw = txn.to_dict()
        source = raw.get("source")
        source_id = source.get("id") if isinstance(source, dict) else source
        intent = source.get("payment_intent") if isinstance(source, dict) else None
        found.append(
            BalanceTransaction(
                id=str(raw["id"]),
                type=str(raw.get("type", "")),
                amount=int(raw.get("amount", 0)),
                fee=int(raw.get("fee", 0)),
                created=int(raw.get("created", 0)),
                source=str(source_id) if source_id else None,
                payment_intent=str(intent) if isinstance(intent, str) else None,
            )
        )
    return found


def upsert_webhook_endpoint(*, url: str, events: list[str]) -> tuple[str, str]:
    """Make the endpoint at `url` receive exactly `events`: (endpoint id, "created" | "updated")."""
    # The SDK types event names as literals; ours are the handler's list, which a test checks.
    params: Any = {"enabled_events": events}
    create: Any = {"url": url, "enabled_events": events}
    listed = _call(lambda: client().v1.webhook_endpoints.list({"limit": 100}))
    existing = [e for e in _call(lambda: list(listed.auto_paging_iter())) if e.url == url]
    if existing:
        endpoint_id = str(existing[0].id)
        _call(lambda: client().v1.webhook_endpoints.update(endpoint_id, params))
        return endpoint_id, "updated"
    created = _call(lambda: client().v1.webhook_endpoints.create(create))
    return str(created.id), "created"
