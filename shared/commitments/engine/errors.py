"""The engine's own refusals, as the providers' pair so one handler takes both."""

from __future__ import annotations

from shared.providers.errors import ProviderRefused, ProviderUnavailable


class Retryable(ProviderUnavailable):
    """Worth trying again later (timeouts, 429, 5xx)."""


class Permanent(ProviderRefused):
    """Will not get better by retrying (declined, revoked, bounced, insufficient funds)."""
