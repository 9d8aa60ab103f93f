"""Connecting X with OAuth 2.0 Authorization Code + PKCE, and keeping the token fresh.

The state and code verifier live server-side, sealed by the vault, expiring
and single use. Tokens are sealed by the vault too. `access_token()` is the
shared helper the consequence engine uses; it refreshes an expired token.
tweepy's OAuth2UserHandler hard-codes X's hosts, so the token endpoints are
called directly with httpx, against X_API_BASE.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from uuid import UUID

from pydantic import BaseModel, Field

from shared import db
from shared.account import sealing
from shared.config import get_settings
from shared.errors import ApiError, bad_request
from shared.log import get_logger
from shared.providers import x_api
from shared.providers.errors import ProviderRefused, ProviderUnavailable

_logger = get_logger("threativator.x")

SCOPES = ("tweet.read", "tweet.write", "users.read", "media.write", "offline.access")
# Refresh a little early, so a token never expires between check and use.
EXPIRY_MARGIN = timedelta(seconds=60)


class XRevoked(ProviderRefused):
    """The user's X grant is gone (revoked, expired refresh token): a permanent failure."""


class StartRequest(BaseModel):
    action: Literal["start"]


class CallbackRequest(BaseModel):
    action: Literal["callback"]
    code: str = Field(min_length=1, max_length=2048)
    state: str = Field(min_length=16, max_length=512)


class DisconnectRequest(BaseModel):
    action: Literal["disconnect"]


ConnectXRequest = Annotated[StartRequest | CallbackRequest | DisconnectRequest, Field(discriminator="action")]


class StartResponse(BaseModel):
    authorize_url: str
    expires_at: datetime


class ConnectionResponse(BaseModel):
    connected: bool
    scope: str | None = None


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def start(user_id: UUID) -> StartResponse:
    settings = get_settings()
    # Dry X (make dev) has no client of its own: the local consent page stands in for X's.
    client_id = x_api.DRY_CLIENT_ID if x_api.dry() else settings.require("x_client_id")
    redirect_uri = settings.require("x_redirect_uri")
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
    state_hash = _hash(state)
    sealed = sealing.seal(verifier.encode(), purpose="x_oauth_verifier", row_id=state_hash, user_id=user_id)
    expires = datetime.now(UTC) + timedelta(seconds=settings.x_oauth_state_ttl_seconds)
    with db.as_service() as conn:
        conn.execute("delete from public.x_oauth_states where expires_at < now()")
        conn.execute(
            "insert into public.x_oauth_states (state_hash, user_id, code_verifier_sealed, key_id, expires_at)"
            " values (%s, %s, %s, %s, %s)",
            [state_hash, user_id, sealed.blob, sealed.key_id, expires],
        )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(SCOPES),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return StartResponse(authorize_url=f"{settings.x_authorize_url}?{query}", expires_at=expires)


def _store(conn: db.Connection, user_id: UUID, tokens: dict[str, Any]) -> None:
    access = sealing.seal(tokens["access_token"].encode(), purpose="x_access_token", row_id=user_id, user_id=user_id)
    refresh_blob = None
    if isinstance(tokens.get("refresh_token"), str):
        refresh = sealing.seal(
            tokens["refresh_token"].encode(), purpose="x_refresh_token", row_id=user_id, user_id=user_id
        )
        refresh_blob = refresh.blob
    expires = datetime.now(UTC) + timedelta(seconds=int(tokens.get("expires_in", 7200)))
    conn.execute(
        "insert into public.x_connections (user_id, access_token_sealed, refresh_token_sealed, key_id, scope,"
        " expires_at) values (%s, %s, %s, %s, %s, %s) on conflict (user_id) do update set"
        " access_token_sealed = excluded.access_token_sealed,"
        " refresh_token_sealed = coalesce(excluded.refresh_token_sealed, public.x_connections.refresh_token_sealed),"
        " key_id = excluded.key_id, scope = excluded.scope, expires_at = excluded.expires_at",
        [user_id, access.blob, refresh_blob, access.key_id, tokens.get("scope"), expires],
    )


def callback(user_id: UUID, request: CallbackRequest) -> ConnectionResponse:
    settings = get_settings()
    # Deleting the state first makes it single use, whatever happens next.
    with db.as_service() as conn:
        row = conn.execute(
            "delete from public.x_oauth_states where state_hash = %s and user_id = %s"
            " returning code_verifier_sealed, key_id, expires_at",
            [_hash(request.state), user_id],
        ).fetchone()
    if row is None:
        raise bad_request("unknown or already used state; start the connection again", code="invalid_state")
    if row["expires_at"] < datetime.now(UTC):
        raise bad_request("the connection attempt expired; start again", code="expired_state")
    verifier = sealing.open_sealed(
        sealing.Sealed(row["key_id"], bytes(row["code_verifier_sealed"])),
        purpose="x_oauth_verifier",
        row_id=_hash(request.state),
        user_id=user_id,
    )
    try:
        tokens = x_api.exchange_code(
            code=request.code, verifier=verifier.decode(), redirect_uri=settings.require("x_redirect_uri")
        )
    except ProviderRefused:
        raise bad_request("X refused the authorization code", code="x_refused") from None
    except ProviderUnavailable:
        raise ApiError(503, "x_unavailable", "X is unavailable; start the connection again shortly") from None
    with db.as_service() as conn:
        _store(conn, user_id, tokens)
        conn.execute("select app.audit('x_connection', null, 'connected', %s)", [user_id])
    return ConnectionResponse(connected=True, scope=tokens.get("scope"))


def _open(row: dict[str, Any], user_id: UUID, column: str, purpose: str) -> str:
    return sealing.open_sealed(
        sealing.Sealed(row["key_id"], bytes(row[column])), purpose=purpose, row_id=user_id, user_id=user_id
    ).decode()


def access_token(user_id: UUID) -> str | None:
    """A usable access token for the user's X account, refreshed if needed; None if not connected."""
    with db.as_service() as conn:
        row = conn.execute("select * from public.x_connections where user_id = %s for update", [user_id]).fetchone()
        if row is None:
            return None
        if row["expires_at"] - EXPIRY_MARGIN > datetime.now(UTC):
            return _open(row, user_id, "access_token_sealed", "x_access_token")
        if row["refresh_token_sealed"] is None:
            raise XRevoked("the X token expired and there is no refresh token")
        refresh = _open(row, user_id, "refresh_token_sealed", "x_refresh_token")
        # The row lock is held through the refresh: X rotates refresh tokens, so two
        # refreshes racing would leave one of them holding a dead token.
        tokens = x_api.refresh(refresh)
        _store(conn, user_id, tokens)
    _logger.info("x token refreshed", extra={"fields": {"user_id": str(user_id)}})
    return str(tokens["access_token"])


def disconnect(user_id: UUID) -> ConnectionResponse:
    """Forget the user's X tokens, unless a goal or an unfinished consequence would post with them."""
    with db.as_service() as conn:
        # The connection's row lock first: detection reads it while it decides on X consequences.
        conn.execute("select 1 from public.x_connections where user_id = %s for update", [user_id])
        in_use = conn.execute("select app.x_connection_in_use(%s) as used", [user_id]).fetchone()
        if in_use and in_use["used"]:
            raise ApiError(
                409,
                "x_connection_in_use",
                "X cannot be disconnected while an active goal or an unfinished consequence depends on it",
            )
        row = conn.execute("delete from public.x_connections where user_id = %s returning *", [user_id]).fetchone()
        if row is not None:
            conn.execute("select app.audit('x_connection', null, 'disconnected', %s)", [user_id])
    if row is None:
        return ConnectionResponse(connected=False)
    try:
        x_api.revoke(_open(row, user_id, "access_token_sealed", "x_access_token"))
    except ProviderUnavailable:
        # The tokens are already deleted here; X expires an unrevoked access token within hours.
        _logger.warning("x revoke failed", extra={"fields": {"user_id": str(user_id)}})
    return ConnectionResponse(connected=False)


def rotate_keys(active: str, batch_size: int = 100) -> dict[str, int]:
    """Re-seal every X connection not under the active key, in batches."""
    count = 0
    while True:
        with db.transaction() as conn:
            rows = conn.execute(
                "select * from public.x_connections where key_id <> %s limit %s for update skip locked",
                [active, batch_size],
            ).fetchall()
            for row in rows:
                user_id = row["user_id"]
                tokens = {"access_token": _open(row, user_id, "access_token_sealed", "x_access_token")}
                access = sealing.seal(
                    tokens["access_token"].encode(), purpose="x_access_token", row_id=user_id, user_id=user_id
                )
                refresh_blob = None
                if row["refresh_token_sealed"] is not None:
                    refresh = _open(row, user_id, "refresh_token_sealed", "x_refresh_token")
                    refresh_blob = sealing.seal(
                        refresh.encode(), purpose="x_refresh_token", row_id=user_id, user_id=user_id
                    ).blob
                conn.execute(
                    "update public.x_connections set access_token_sealed = %s, refresh_token_sealed = %s,"
                    " key_id = %s where user_id = %s",
                    [access.blob, refresh_blob, access.key_id, user_id],
                )
            count += len(rows)
        if len(rows) < batch_size:
            return {"x_connections": count}
