"""Signed links in emails: witness verdicts, contact confirmation, unsubscribe.

Tokens are minted when an email is sent and never stored in plain form.
Witness tokens are short JWTs signed with LINK_SIGNING_SECRET, bound to one
submission and one verdict; their single use is enforced in the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any, Literal
from uuid import UUID

from shared.config import get_settings

WITNESS_PURPOSE = "witness_verdict"
WITNESS_TTL_SECONDS = 7 * 24 * 3600


class LinkError(Exception):
    """A token that is malformed, tampered with, expired or for something else."""


def _secret() -> str:
    return get_settings().require("link_signing_secret")


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint_witness_token(
    submission_id: UUID, verdict: Literal["pass", "fail"], *, request_id: UUID, ttl_seconds: int = WITNESS_TTL_SECONDS
) -> str:
    """A token for one verdict on one submission, under one witness request (its jti)."""
    import jwt

    now = int(time.time())
    claims = {
        "purpose": WITNESS_PURPOSE,
        "sub": str(submission_id),
        "verdict": verdict,
        "jti": str(request_id),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, _secret(), algorithm="HS256")


def read_witness_token(token: str) -> dict[str, Any]:
    import jwt

    try:
        claims: dict[str, Any] = jwt.decode(
            token, _secret(), algorithms=["HS256"], options={"require": ["exp", "sub", "jti", "purpose", "verdict"]}
        )
    except jwt.ExpiredSignatureError:
        raise LinkError("this witness link has expired") from None
    except jwt.PyJWTError:
        raise LinkError("this witness link is not valid") from None
    if claims.get("purpose") != WITNESS_PURPOSE or claims.get("verdict") not in ("pass", "fail"):
        raise LinkError("this witness link is not valid")
    try:
        uuid.UUID(str(claims["sub"]))
        uuid.UUID(str(claims["jti"]))
    except ValueError:
        raise LinkError("this witness link is not valid") from None
    return claims


def witness_links(submission_id: UUID, request_id: UUID) -> dict[str, str]:
    base = get_settings().app_base_url
    return {
        verdict: f"{base}/witness?token={mint_witness_token(submission_id, verdict, request_id=request_id)}"
        for verdict in ("pass", "fail")
    }


def new_verification_token() -> str:
    return secrets.token_urlsafe(32)


def contact_links(token: str) -> dict[str, str]:
    base = get_settings().app_base_url
    return {"confirm": f"{base}/contacts/confirm?token={token}", "decline": f"{base}/contacts/decline?token={token}"}


def unsubscribe_token(user_id: UUID) -> str:
    """Stable per user, so every reminder's link works; only its hash is stored."""
    return hmac.new(_secret().encode(), f"unsubscribe:{user_id}".encode(), hashlib.sha256).hexdigest()


def unsubscribe_link(token: str) -> str:
    return f"{get_settings().app_base_url}/unsubscribe?token={token}"
