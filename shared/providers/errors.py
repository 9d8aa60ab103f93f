"""The one pair of errors every provider raises: worth retrying, or refused for good."""

from __future__ import annotations


class ProviderUnavailable(Exception):
    """A timeout, a dropped connection, a 429 or a 5xx: a later try may succeed.

    `retry_after` is the provider's own hint in seconds, when it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class ProviderRefused(Exception):
    """The provider said no (a 4xx, a decline, a revoked grant): the same request will not succeed.

    `code` is the provider's own short code when it gave one (never its message, which may hold data)."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
