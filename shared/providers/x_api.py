"""X through tweepy's Client and httpx, sent to X_API_BASE. The only module that calls X.

Every call answers a value or raises ProviderUnavailable (timeouts, 429, 5xx) or
ProviderRefused (any other 4xx: a revoked grant, a refused post).

tweepy 4.x builds every URL on https://api.twitter.com. A transport adapter
mounted on tweepy's own requests session sends those requests to X_API_BASE
instead, so tweepy's request and error handling run unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.config import get_settings
from shared.providers.errors import ProviderRefused, ProviderUnavailable

if TYPE_CHECKING:
    import tweepy

TWEEPY_HOST = "https://api.twitter.com"
TIMEOUT_SECONDS = 30
TOKEN_TIMEOUT_SECONDS = 15


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


def dry() -> bool:
    """No X client outside production: posts are recorded in the development outbox instead."""
    settings = get_settings()
    return settings.x_client_id is None and settings.providers_dry()


def record_dry_post(user_id: str, summary: str, consequence_id: str) -> str:
    from shared.providers import outbox

    outbox.record("x", user_id, summary, {"consequence_id": consequence_id})
    return "dry-post"


# Dry mode (make dev): the local consent page (shared/dev/devserver.py) answers as X's would, with
# a code bound to the PKCE challenge, so the exchange checks the verifier exactly as X does.
DRY_CLIENT_ID = "threativator-dry-client"
DRY_CODE_PREFIX = "dry-"


def dry_authorization_code(code_challenge: str) -> str:
    return DRY_CODE_PREFIX + code_challenge


def _dry_tokens() -> dict[str, Any]:
    import secrets

    return {
        "token_type": "bearer",
        "access_token": "dry-access-" + secrets.token_urlsafe(24),
        "refresh_token": "dry-refresh-" + secrets.token_urlsafe(24),
        "expires_in": 7200,
        "scope": "tweet.read tweet.write users.read media.write offline.access",
    }


def _dry_exchange(code: str, verifier: str) -> dict[str, Any]:
    import base64
    import hashlib

    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    if code != dry_authorization_code(challenge):
        raise ProviderRefused("x refused the grant (400)", "400")
    return _dry_tokens()


def _check(status: int, what: str) -> None:
    if status == 429 or status >= 500:
        raise ProviderUnavailable(f"x {what} answered {status}")
    if status >= 400:
        raise ProviderRefused(f"x refused the {what} ({status})", str(status))


def _client_auth(form: dict[str, str]) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Confidential clients authenticate with Basic auth; public ones name their client id."""
    settings = get_settings()
    if settings.x_client_secret is not None:
        return form, (settings.require("x_client_id"), settings.x_client_secret.get_secret_value())
    return {**form, "client_id": settings.require("x_client_id")}, None


def _token(form: dict[str, str]) -> dict[str, Any]:
    import httpx

    body, auth = _client_auth(form)
    try:
        response = httpx.post(
            f"{get_settings().x_api_base}/2/oauth2/token", data=body, auth=auth, timeout=TOKEN_TIMEOUT_SECONDS
        )
    except httpx.HTTPError:
        raise ProviderUnavailable("X token endpoint unreachable") from None
    _check(response.status_code, "grant")
    tokens: dict[str, Any] = response.json()
    if not isinstance(tokens.get("access_token"), str):
        raise ProviderUnavailable("X token response without an access token")
    return tokens


def exchange_code(*, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
    """OAuth 2.0 authorization code + PKCE verifier -> tokens."""
    if dry():
        return _dry_exchange(code, verifier)
    return _token(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    )


def refresh(refresh_token: str) -> dict[str, Any]:
    if dry():
        if not refresh_token.startswith("dry-refresh-"):
            raise ProviderRefused("x refused the grant (400)", "400")
        return _dry_tokens()
    return _token({"grant_type": "refresh_token", "refresh_token": refresh_token})


def revoke(access_token: str) -> None:
    """Best effort: ProviderUnavailable when X cannot be reached."""
    import httpx

    if dry():
        return

    body, auth = _client_auth({"token": access_token, "token_type_hint": "access_token"})
    try:
        httpx.post(f"{get_settings().x_api_base}/2/oauth2/revoke", data=body, auth=auth, timeout=TOKEN_TIMEOUT_SECONDS)
    except httpx.HTTPError:
        raise ProviderUnavailable("X revoke endpoint unreachable") from None


def upload_media(token: str, *, filename: str, content: bytes, media_type: str) -> str:
    """X's v2 media upload (tweepy 4.x only has the retired v1.1 endpoint); returns the media id."""
    import httpx

    try:
        response = httpx.post(
            f"{get_settings().x_api_base}/2/media/upload",
            headers={"Authorization": f"Bearer {token}"},
            files={"media": (filename, content, media_type)},
            data={"media_category": "tweet_image"},
            timeout=60,
        )
    except httpx.HTTPError:
        raise ProviderUnavailable("x media upload unreachable") from None
    _check(response.status_code, "media")
    data = response.json().get("data") or {}
    media_id = data.get("id") or data.get("media_id_string") or data.get("media_id")
    if not media_id:
        raise ProviderUnavailable("x media upload answered without an id")
    return str(media_id)


def post(token: str, text: str, media_id: str) -> str:
    """One post with one image; returns the post id."""
    import tweepy

    try:
        response = tweepy_client(token).create_tweet(text=text, media_ids=[media_id], user_auth=False)
    except (tweepy.TooManyRequests, tweepy.TwitterServerError) as error:
        raise ProviderUnavailable(f"x answered {type(error).__name__}") from None
    except (tweepy.Unauthorized, tweepy.Forbidden) as error:
        raise ProviderRefused(f"x refused the post: {type(error).__name__}") from None
    except tweepy.HTTPException as error:
        raise ProviderRefused(f"x refused the post: {getattr(error.response, 'status_code', '?')}") from None
    except tweepy.TweepyException:
        raise ProviderUnavailable("x unreachable") from None
    data: Any = response.data if hasattr(response, "data") else None
    if not data or "id" not in data:
        raise ProviderUnavailable("x answered without a post id")
    return str(data["id"])
