"""Verification of Supabase credentials, in exactly one place.

User tokens: HS256 tokens signed with the project's legacy JWT secret (when it is
configured), and ES256 or RS256 tokens signed by a key published at
SUPABASE_URL/auth/v1/.well-known/jwks.json, issued by SUPABASE_URL/auth/v1. The
algorithm decides the key, and each key is used only with its own algorithm, so
`none` and HS/RS confusion fail. Every way a token can be bad is the same 401.

Service credentials: Supabase's secret API keys (sb_secret_…, not JWTs) listed in
SUPABASE_SECRET_KEYS, compared in constant time; a legacy service_role JWT while a
project still has one; Google OIDC for Cloud Scheduler. A publishable key
(sb_publishable_…) or an anon JWT identifies nobody: the caller is anonymous.
"""

from __future__ import annotations

import functools
import hmac
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


SECRET_KEY_PREFIX = "sb_secret_"  # noqa: S105 - the prefix Supabase gives secret keys, not a secret
PUBLISHABLE_KEY_PREFIX = "sb_publishable_"
LEGACY_SERVICE_ISSUER = "supabase"  # what Supabase's legacy anon and service_role keys carry


def _signing_key(token: str, algorithm: str) -> Any:
    import jwt

    if algorithm == "HS256":
        secret = get_settings().supabase_jwt_secret
        if secret is None:
            raise jwt.InvalidAlgorithmError("no HS256 secret: this project verifies tokens by JWKS only")
        return secret.get_secret_value()
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


def _issued_here(claims: Mapping[str, Any], *, legacy_key_ok: bool) -> bool:
    issuer = claims.get("iss")
    return issuer == f"{get_settings().supabase_url}/auth/v1" or (legacy_key_ok and issuer == LEGACY_SERVICE_ISSUER)


def service_key(key: str) -> Caller:
    """A service caller presenting one of SUPABASE_SECRET_KEYS; anything else is a 401.

    Every listed key is compared, in constant time, so neither a match nor a near miss can be timed."""
    matched = False
    for listed in get_settings().secret_keys():
        matched |= hmac.compare_digest(key.encode(), listed.encode())
    if not matched:
        raise unauthorized("invalid or expired token")
    return Caller(role="service_role", claims={"key": "secret"})


def anonymous_token(token: str) -> bool:
    """A publishable key, or a verified anon JWT: a logged-out browser, identifying nobody."""
    if token.startswith(PUBLISHABLE_KEY_PREFIX):
        return True
    if token.count(".") != 2:
        return False
    try:
        verify_token(token)
    except AnonymousToken:
        return True
    except ApiError:
        return False
    return False


class AnonymousToken(ApiError):
    """A valid anon JWT: no user and no service."""

    def __init__(self) -> None:
        super().__init__(401, "unauthorized", "this token does not identify a user or the service")


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
    # A user token is issued by this project's Auth; the legacy keys carry Supabase's own issuer.
    if not _issued_here(claims, legacy_key_ok=role in ("service_role", "anon")):
        raise unauthorized("invalid or expired token")
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
    if role == "anon":
        raise AnonymousToken()
    raise unauthorized("this token does not identify a user or the service")


def bearer_token(authorization: str | None) -> str:
    """The credential from an `Authorization: Bearer <token>` header (a JWT or a Supabase API key), or a 401."""
    if not authorization:
        raise unauthorized()
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    api_key = token.startswith((SECRET_KEY_PREFIX, PUBLISHABLE_KEY_PREFIX))
    if scheme.lower() != "bearer" or not token or " " in token or (token.count(".") != 2 and not api_key):
        raise unauthorized("malformed Authorization header; expected 'Bearer <jwt>'")
    return token


def identify(authorization: str | None, apikey: str | None, *, service: bool = False) -> Caller | None:
    """Who is calling, from `Authorization` and Supabase's `apikey` header; None for an anonymous
    caller (no credential, a publishable key, an anon JWT). A bad credential is a 401.

    A secret key is a service credential wherever it is presented; on a service-only function
    (`service`) Google OIDC tokens are accepted too."""
    apikey = (apikey or "").strip()
    if apikey.startswith(SECRET_KEY_PREFIX):
        return service_key(apikey)
    if not authorization:
        if apikey and not anonymous_token(apikey):
            raise unauthorized("invalid or expired token")
        return None
    token = bearer_token(authorization)
    if token.startswith(SECRET_KEY_PREFIX):
        return service_key(token)
    if token.startswith(PUBLISHABLE_KEY_PREFIX):
        return None
    try:
        return authenticate_service(authorization) if service else verify_token(token)
    except AnonymousToken:
        return None


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
    role: Literal["authenticated", "service_role", "anon"] = "authenticated",
    ttl_seconds: int = 3600,
    email: str | None = None,
    secret: str | None = None,
    app_metadata: dict[str, Any] | None = None,
    user_metadata: dict[str, Any] | None = None,
) -> str:
    """Mint an HS256 token the way Supabase Auth does. For development and tests. user_metadata is
    what a user may write about themselves; app_metadata only the service."""
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
        if user_metadata is not None:
            claims["user_metadata"] = user_metadata
    if secret is None and settings.supabase_jwt_secret is None:
        raise ApiError(500, "config", "SUPABASE_JWT_SECRET is not set: this project has no HS256 secret to sign with")
    key = secret if secret is not None else settings.supabase_jwt_secret.get_secret_value()  # type: ignore[union-attr]  # checked above
    return jwt.encode(claims, key, algorithm="HS256")
