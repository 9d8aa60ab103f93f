"""stripe_webhook: Stripe's signed events; the signature is the credential."""

from __future__ import annotations

import functions_framework

from shared.http import Auth, Call, endpoint
from shared.money import stripe_events
from shared.money.stripe_events import WebhookResult


@functions_framework.http
@endpoint("stripe_webhook", body=None, auth=Auth.NONE, raw_content_types=("application/json",))
def stripe_webhook(call: Call[None]) -> WebhookResult:
    return stripe_events.handle(call.request.get_data(cache=False), call.request.headers.get("Stripe-Signature"))
