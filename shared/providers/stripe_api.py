"""Stripe, through the official SDK's StripeClient, pointed at STRIPE_API_BASE."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from shared.config import get_settings
from shared.errors import ApiError

if TYPE_CHECKING:
    import stripe

# Stripe retries connection errors, 409 and 5xx itself, reusing the idempotency key.
MAX_NETWORK_RETRIES = 2


@functools.cache
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


def is_transient(error: Exception) -> bool:
    """True for faults a later retry may cure: connection, rate limit, Stripe's 5xx."""
    import stripe

    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    status = getattr(error, "http_status", None)
    return isinstance(error, stripe.StripeError) and (status is None or status >= 500)


def as_api_error(error: Exception) -> ApiError:
    """Stripe's refusal as our error shape; never echoes Stripe's message, which may hold data."""
    import stripe

    if is_transient(error):
        return ApiError(
            503,
            "payment_provider_unavailable",
            "the payment provider is unavailable; retry shortly",
            headers={"Retry-After": "10"},
        )
    if isinstance(error, stripe.CardError):
        return ApiError(402, "card_declined", "the card was declined", {"decline_code": error.code})
    code = getattr(error, "code", None)
    return ApiError(502, "payment_provider_refused", "the payment provider refused the request", {"code": code})
