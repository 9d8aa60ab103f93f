"""Verification of Supabase JWTs, in exactly one place.

Accepted: HS256 tokens signed with the project's legacy JWT secret, and ES256 or
RS256 tokens signed by a key published at SUPABASE_URL/auth/v1/.well-known/jwks.json.
The algorithm decides the key, and each key is used only with its own algorithm,
so `none` and HS/RS confusion fail. Every way a token can be bad is the same 401.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from shared.config import get_settings
from shared.errors import ApiError, unauthorized

if TYPE_CHECKING:
    import jwt

ASYMMETRIC_ALGORITHMS = frozenset({"ES256", "RS256"})
USER_AUDIENCE = "authenticated"
CLOCK_SKEW_SECONDS = 5


@dataclass(frozen=True)
class Caller:
    """Who is calling: a signed-in user, or the service (scheduler, pg_net, other functions)."""

    role: Literal["authenticated", "service_role"]
    user_id: UUID | None = None
    email: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_service(self) -> bool:
        return self.role == "service_role"

    @property
    def is_operator(self) -> bool:
        """A user whose Supabase `app_metadata.role` is `operator`: set only with the service key
        (users cannot write app_metadata), and carried in their signed JWT."""
        metadata = self.claims.get("app_metadata")
        return self.role == "authenticated" and isinstance(metadata, dict) and metadata.get("role") == "operator"


@functools.cache
def _jwks_client() -> jwt.PyJWKClient:
    import jwt

    settings = get_settings()
    return jwt.PyJWKClient(
        settings.jwks_url,
        cache_keys=True,
        lifespan=max(settings.jwks_cache_seconds, 1),
        timeout=5,
    )


def _signing_key(token: str, algorithm: str) -> Any:
    import jwt

    if algorithm == "HS256":
        return get_settings().supabase_jwt_secret.get_secret_value()
    if algorithm in ASYMMETRIC_ALGORITHMS:
        jwk = _jwks_client().get_signing_key_from_jwt(token)
        if jwk.algorithm_name != algorithm:
            raise jwt.InvalidAlgorithmError("key does not belong to the token's algorithm")
        return jwk
    raise jwt.InvalidAlgorithmError("algorithm not allowed")


def _audiences(claims: Mapping[str, Any]) -> set[str]:
    aud = claims.get("aud")
    if aud is None:
        return set()
    if isinstance(aud, str):
        return {aud}
    return {a for a in aud if isinstance(a, str)}


def verify_token(token: str) -> Caller:
    """Verify a Supabase JWT and say who it belongs to; any fault raises a 401 ApiError."""
    import jwt

    try:
        header = jwt.get_unverified_header(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise jwt.InvalidAlgorithmError("algorithm missing")
        key = _signing_key(token, algorithm)
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "role"], "verify_aud": False},
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        raise unauthorized("invalid or expired token") from None

    role = claims.get("role")
    audiences = _audiences(claims)
    if role == "authenticated":
        if USER_AUDIENCE not in audiences:
            raise unauthorized("invalid or expired token")
        try:
            user_id = UUID(str(claims.get("sub")))
        except ValueError:
            raise unauthorized("invalid or expired token") from None
        email = claims.get("email")
        return Caller(
            role="authenticated",
            user_id=user_id,
            email=email if isinstance(email, str) else None,
            claims=claims,
        )
    if role == "service_role":
        # Supabase's service key carries no audience; a token naming another one is not ours.
        if audiences - {USER_AUDIENCE, "service_role"}:
            raise unauthorized("invalid or expired token")
        return Caller(role="service_role", claims=claims)
    # anon keys and anything else identify nobody.
    raise unauthorized("this token does not identify a user or the service")


def bearer_token(authorization: str | None) -> str:
    """The token from an `Authorization: Bearer <token>` header, or a 401."""
    if not authorization:
        raise unauthorized()
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or token.count(".") != 2:
        raise unauthorized("malformed Authorization header; expected 'Bearer <jwt>'")
    return token


def authenticate(authorization: str | None) -> Caller:
    return verify_token(bearer_token(authorization))


GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})


def verify_google_oidc(token: str) -> Caller:
    """A Google-signed ID token for this function's URL, from an allowed service account."""
    settings = get_settings()
    allowed = {a for a in (settings.scheduler_service_account, settings.functions_service_account) if a}
    if not allowed or not settings.function_url:
        raise unauthorized("invalid or expired token")
    import google.auth.exceptions
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token

    try:
        claims = dict(
            id_token.verify_token(
                token,
                google_requests.Request(),
                audience=settings.function_url,
                certs_url=settings.google_certs_url,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        )
    except (ValueError, google.auth.exceptions.GoogleAuthError):
        raise unauthorized("invalid or expired token") from None
    if (
        claims.get("iss") not in GOOGLE_ISSUERS
        or claims.get("email") not in allowed
        or not claims.get("email_verified")
    ):
        raise unauthorized("invalid or expired token")
    return Caller(role="service_role", email=str(claims["email"]), claims=claims)


def authenticate_service(authorization: str | None) -> Caller:
    """A service caller: a Supabase service_role JWT, or a Google OIDC token when configured."""
    token = bearer_token(authorization)
    import jwt

    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        raise unauthorized("invalid or expired token") from None
    if issuer in GOOGLE_ISSUERS:
        return verify_google_oidc(token)
    return verify_token(token)


def mint_token(
    subject: str | None,
    *,
    role: Literal["authenticated", "service_role"] = "authenticated",
    ttl_seconds: int = 3600,
    email: str | None = None,
    secret: str | None = None,
    app_metadata: dict[str, Any] | None = None,
) -> str:
    """Mint an HS256 token the way Supabase Auth does. For development and tests."""
    import time

    import jwt

    settings = get_settings()
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": f"{settings.supabase_url}/auth/v1",
        "iat": now,
        "exp": now + ttl_seconds,
        "role": role,
    }
    if role == "authenticated":
        if subject is None:
            raise ApiError(400, "bad_request", "a user token needs a subject")
        claims.update(sub=subject, aud=USER_AUDIENCE)
        if email:
            claims["email"] = email
        if app_metadata is not None:
            claims["app_metadata"] = app_metadata
    key = secret if secret is not None else settings.supabase_jwt_secret.get_secret_value()
    return jwt.encode(claims, key, algorithm="HS256")
