"""X through tweepy's Client, sent to X_API_BASE.

tweepy 4.x builds every URL on https://api.twitter.com. A transport adapter
mounted on tweepy's own requests session sends those requests to X_API_BASE
instead, so tweepy's request and error handling run unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.config import get_settings

if TYPE_CHECKING:
    import tweepy

TWEEPY_HOST = "https://api.twitter.com"
TIMEOUT_SECONDS = 30


def _adapter(base: str) -> Any:
    from requests import PreparedRequest, Response
    from requests.adapters import HTTPAdapter

    class BaseUrlAdapter(HTTPAdapter):
        def send(
            self,
            request: PreparedRequest,
            stream: bool = False,
            timeout: float | tuple[float | None, float | None] | None = None,
            verify: bool | str = True,
            cert: str | tuple[str, str] | None = None,
            proxies: dict[str, str] | None = None,
        ) -> Response:
            if request.url and request.url.startswith(TWEEPY_HOST):
                request.url = base + request.url[len(TWEEPY_HOST) :]
            return super().send(
                request, stream=stream, timeout=timeout or TIMEOUT_SECONDS, verify=verify, cert=cert, proxies=proxies
            )

    return BaseUrlAdapter()


def tweepy_client(access_token: str) -> tweepy.Client:
    """A tweepy Client acting with the user's OAuth 2.0 access token."""
    import tweepy

    client = tweepy.Client(bearer_token=access_token, wait_on_rate_limit=False)
    client.session.mount(TWEEPY_HOST, _adapter(get_settings().x_api_base))
    return client
