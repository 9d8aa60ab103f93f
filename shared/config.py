"""One typed Settings object, loaded once from the environment."""

from __future__ import annotations

import base64
import re
import threading
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Values that must never reach production: Supabase's documented local JWT
# secret and the usual stand-ins.
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "secret",
        "placeholder",
        "super-secret-jwt-token-with-at-least-32-characters-long",
        "threativator-dev-jwt-secret-not-for-production-use",
    }
)


# The browser origins `make dev` allows when CORS_ORIGINS is unset: the usual local frontends.
DEV_ORIGINS = tuple(f"http://{host}:{port}" for host in ("localhost", "127.0.0.1") for port in (3000, 5173, 8080))


class ConfigError(RuntimeError):
    """A required setting is missing or invalid; the message names it."""


class Settings(BaseSettings):
    """Every setting the backend reads, by its environment variable name."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    environment: Literal["development", "test", "production"] = "production"
    log_level: str = "INFO"

    # Database and Supabase
    database_url: SecretStr
    db_pool_max: int = Field(default=4, ge=1, le=50)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    supabase_url: str
    # The legacy HS256 secret: optional, a project signing user tokens with asymmetric keys only
    # (JWKS) has none. When both are configured, both kinds of token are accepted.
    supabase_jwt_secret: SecretStr | None = None
    # The legacy service_role key (a JWT), while a project still has legacy keys.
    supabase_service_role_key: SecretStr | None = None
    # Supabase's new secret API keys (sb_secret_…), comma-separated so a rotation can overlap:
    # accepted from service callers in `apikey` or as a bearer token. Never a publishable key.
    supabase_secret_keys: SecretStr | None = None
    # Database Webhooks (grade_submission, send_notification) carry this in X-Webhook-Secret.
    database_webhook_secret: SecretStr | None = None
    jwks_cache_seconds: int = Field(default=600, ge=0)

    # HTTP
    # Browser origins allowed to call the functions. Unset in development: the usual local
    # frontend origins (DEV_ORIGINS). Elsewhere an explicit list; "*" only in development.
    cors_origins: Annotated[list[str] | None, NoDecode] = None
    max_body_bytes: int = Field(default=1_000_000, gt=0)

    # Stripe: the holding cell
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_webhook_tolerance_seconds: int = Field(default=300, gt=0)
    stripe_timeout_seconds: float = Field(default=20.0, gt=0)
    deposit_min_cents: int = Field(default=500, gt=0)
    deposit_max_cents: int = Field(default=1_000_000, gt=0)
    currency: str = "usd"
    # Who pays Stripe's processing fee on a deposit (issue 18). "user": the deposit charges the
    # stake plus a funding fee, so that after Stripe's fee the platform nets the stake exactly;
    # "platform": the stake is charged and the platform absorbs the fee. The stake is never reduced.
    funding_fee_payer: Literal["user", "platform"] = "user"
    # The akrasia horizon (issue 15): an easing change to an active goal takes effect this long
    # after it is asked for, and never touches a deadline inside it.
    change_notice_days: float = Field(default=7, ge=0, le=60)
    # Checkpoints a goal may have besides its final deadline (weekly for a year). Each puts a part
    # of the stake at risk, fixed when it is made, so a cap keeps every part a real amount.
    max_checkpoints_per_goal: int = Field(default=52, ge=1, le=365)
    # Leaving (issue 19): kompromat nothing needs is destroyed this long after it was last needed;
    # an erased account's money facts are kept this long (docs/privacy.md).
    kompromat_retention_days: int = Field(default=30, ge=0, le=3650)
    # Erasure reaches backups: the active master key is replaced at least this often (the scheduler
    # re-wraps every data key under the new one and reports when a rotation is due), and a retired
    # key is destroyed once every backup made under it has expired (BACKUP_RETENTION_DAYS, as long
    # as the longest backup or point-in-time recovery the project keeps). An erased account's
    # kompromat in any backup stops opening after at most the two added together.
    kompromat_key_rotation_days: int = Field(default=90, ge=1, le=3650)
    backup_retention_days: int = Field(default=30, ge=1, le=3650)
    financial_record_retention_years: int = Field(default=7, ge=1, le=30)
    stripe_fee_percent: Decimal = Field(default=Decimal("2.9"), ge=0, lt=50)
    stripe_fee_fixed_cents: int = Field(default=30, ge=0)

    # The kompromat vault: "id:base64key,id2:base64key2"; the last listed (or
    # KOMPROMAT_ACTIVE_KEY_ID) encrypts, every listed key decrypts.
    kompromat_keys: SecretStr | None = None
    kompromat_active_key_id: str | None = None
    kompromat_max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)

    # X (OAuth 2.0 with PKCE)
    x_client_id: str | None = None
    x_client_secret: SecretStr | None = None
    x_redirect_uri: str | None = None
    x_authorize_url: str = "https://x.com/i/oauth2/authorize"
    x_oauth_state_ttl_seconds: int = Field(default=600, gt=0)

    # Email (SendGrid) and the links in emails
    sendgrid_api_key: SecretStr | None = None
    sendgrid_template_ids: dict[str, str] = Field(default_factory=dict)
    sendgrid_timeout_seconds: float = Field(default=10.0, gt=0)
    email_from: str = "Threativator <notifications@threativator.com>"
    app_base_url: str = "http://127.0.0.1:5173"
    avatar_base_url: str = "https://threativator.com/avatars"
    link_signing_secret: SecretStr | None = None
    contact_verification_ttl_hours: int = Field(default=72, gt=0)
    # Verification emails per user per day; the rest wait (no one is mailed in bulk through us).
    contact_invites_per_day: int = Field(default=10, gt=0)
    notification_max_attempts: int = Field(default=8, gt=0)
    notification_retry_budget_seconds: float = Field(default=8.0, ge=0)

    # Limits on what one user can ask of the grader and of other people
    grading_requests_per_hour: int = Field(default=20, gt=0)
    # An export gathers every row held about the account: enough for a person, too few to be a way
    # to load the database or to scrape it with a stolen token.
    exports_per_hour: int = Field(default=5, gt=0)
    vouches_per_day: int = Field(default=3, gt=0)

    # The consequence engine
    contest_window_hours: float = Field(default=24, ge=0)
    # Human review: items older than this are reported by every check_deadlines pass
    operator_sla_hours: float = Field(default=48, gt=0)
    operator_email: str | None = None
    # The operator console (operator_console): Supabase's publishable key, for signing in through
    # Supabase Auth's REST API, and operator_review's URL when it is not beside the console's own
    # (each function its own origin, as on Cloud Run): it is then allowed by the page's CSP.
    supabase_publishable_key: str | None = None
    operator_review_url: str | None = None
    roulette_odds_numerator: int = Field(default=1, ge=0)
    roulette_odds_denominator: int = Field(default=3, gt=0)
    detection_batch_size: int = Field(default=500, gt=0)
    check_deadlines_time_budget_seconds: float = Field(default=45.0, gt=0)
    dispatch_concurrency: int = Field(default=8, ge=1, le=64)
    # Stripe allows about 100 write requests a second in live mode, and each payout is one: dispatch
    # starts at most this many consequences a second, leaving room for refunds. 0: unpaced.
    dispatch_per_second: float = Field(default=80, ge=0)
    dispatch_limit: int = Field(default=500, ge=1)
    dispatch_timeout_seconds: float = Field(default=60.0, gt=0)
    consequence_lease_seconds: int = Field(default=120, gt=0)
    consequence_max_attempts: int = Field(default=8, gt=0)
    consequence_backoff_base_seconds: int = Field(default=60, ge=0)
    charity_accounts: dict[str, str] = Field(default_factory=dict)
    trigger_consequence_url: str | None = None
    dispatch_with_id_token: bool = False

    # Google OIDC callers (Cloud Scheduler, check_deadlines calling trigger_consequence)
    function_url: str | None = None
    scheduler_service_account: str | None = None
    functions_service_account: str | None = None
    google_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"

    # Grading (Gemini through google-genai) and proof intake
    gemini_api_key: SecretStr | None = None
    gemini_model: str = "gemini-3.8-flash"
    # How hard the model thinks before it judges. A verdict weighs a rubric's criteria against a photo
    # or a page, and must notice proof that talks to the grader: more than a lookup ("low"), far less
    # than multi-step planning ("high", which triples the thinking tokens billed as output). A doubtful
    # verdict goes to a person anyway. Sent as a thinking budget (see shared/providers/gemini.py).
    gemini_thinking_level: Literal["low", "medium", "high"] = "medium"
    # The token budget per image or PDF page. Google recommends high for image understanding (reading a
    # handwritten challenge phrase, small print on a screen); a wrong fail costs a user a contest, and
    # high costs about $0.0004 more per photo than medium at the model's price.
    gemini_media_resolution: Literal["low", "medium", "high"] = "high"
    # Images go to the model with at most this many pixels on their longest side, re-encoded as JPEG
    # (EXIF dropped). At high media resolution Gemini 3 reads an image within a fixed token budget, so
    # pixels beyond this are upload time, not detail; 1536 keeps a phone photo's handwriting legible.
    # The capture, its hashes and what witnesses and operators see keep the original.
    grading_image_max_side: int = Field(default=1536, ge=256, le=8192)
    grading_temperature: float = Field(default=0.1, ge=0, le=2)
    grading_confidence_threshold: float = Field(default=0.7, ge=0, le=1)
    gemini_timeout_ms: int = Field(default=30_000, gt=0)
    gemini_retry_attempts: int = Field(default=4, ge=1, le=10)
    gemini_retry_initial_delay: float = Field(default=1.0, ge=0)
    gemini_retry_max_delay: float = Field(default=8.0, ge=0)
    grading_max_proof_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    url_fetch_max_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    url_fetch_timeout_seconds: float = Field(default=10.0, gt=0)
    # Proof made for this checkpoint: images within this many bits of an earlier image's
    # perceptual hash go to a person; larger images than PROOF_MAX_PIXELS are refused undecoded.
    proof_similarity_bits: int = Field(default=6, ge=0, le=15)
    proof_max_pixels: int = Field(default=60_000_000, gt=0)
    submission_bucket: str = "proofs"
    # make dev's stand-in for Supabase Storage: with no service credential outside production,
    # objects live under this folder (the dev server serves the Storage upload API over it).
    dev_storage_dir: str | None = None
    witness_link_ttl_hours: int = Field(default=168, gt=0)
    # A witness who has not answered by then is replaced by the grader (or a person).
    witness_response_hours: float = Field(default=72, gt=0)

    # Provider base URLs: tests and local development point the SDKs at loopback.
    gemini_api_base: str = "https://generativelanguage.googleapis.com"
    stripe_api_base: str = "https://api.stripe.com"
    sendgrid_api_host: str = "https://api.sendgrid.com"
    x_api_base: str = "https://api.x.com"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str] | None) -> list[str] | None:
        for origin in value or []:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s?#]+", origin):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
        return value

    @field_validator(
        "supabase_url",
        "gemini_api_base",
        "stripe_api_base",
        "sendgrid_api_host",
        "x_api_base",
        "app_base_url",
        "avatar_base_url",
    )
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _refuse_placeholders_outside_development(self) -> Settings:
        if self.environment == "production":
            for name in ("supabase_jwt_secret", "supabase_service_role_key"):
                value = getattr(self, name)
                if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                    raise ValueError(f"{name.upper()} is a placeholder; set a real secret")
            if self.supabase_jwt_secret is not None and len(self.supabase_jwt_secret.get_secret_value()) < 32:
                raise ValueError("SUPABASE_JWT_SECRET must be at least 32 characters")
            if self.database_webhook_secret is not None and len(self.database_webhook_secret.get_secret_value()) < 32:
                raise ValueError("DATABASE_WEBHOOK_SECRET must be at least 32 characters")
        if self.environment != "development" and "*" in (self.cors_origins or []):
            raise ValueError("CORS_ORIGINS may be '*' only in development; list the frontend's origins")
        for key in self.secret_keys():
            if not key.startswith("sb_secret_") or len(key) < 20:
                raise ValueError("SUPABASE_SECRET_KEYS lists sb_secret_… keys, comma-separated")
        return self

    def allowed_origins(self) -> list[str]:
        """The browser origins CORS allows: CORS_ORIGINS, or the local ones in development."""
        if self.cors_origins is not None:
            return self.cors_origins
        return list(DEV_ORIGINS) if self.environment == "development" else []

    def secret_keys(self) -> list[str]:
        """The configured sb_secret_ keys, in order (the first is the one this service sends)."""
        if self.supabase_secret_keys is None:
            return []
        return [k.strip() for k in self.supabase_secret_keys.get_secret_value().split(",") if k.strip()]

    def service_credential(self) -> str | None:
        """What this service presents to other functions and Supabase: a secret key, else the legacy one."""
        keys = self.secret_keys()
        if keys:
            return keys[0]
        return self.supabase_service_role_key.get_secret_value() if self.supabase_service_role_key else None

    @property
    def jwks_url(self) -> str:
        return f"{self.supabase_url}/auth/v1/.well-known/jwks.json"

    def kompromat_key_map(self) -> dict[str, bytes]:
        """{key id: 32-byte key}, in the order listed; ConfigError names a bad entry."""
        if self.kompromat_keys is None or not self.kompromat_keys.get_secret_value().strip():
            raise ConfigError("KOMPROMAT_KEYS is not set")
        keys: dict[str, bytes] = {}
        for entry in self.kompromat_keys.get_secret_value().split(","):
            key_id, _, encoded = entry.strip().partition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError:
                key = b""
            if not key_id or len(key) != 32:
                raise ConfigError(f"KOMPROMAT_KEYS entry {key_id or '?'!r} is not id:base64(32 bytes)")
            keys[key_id] = key
        return keys

    def active_kompromat_key_id(self) -> str:
        keys = self.kompromat_key_map()
        active = self.kompromat_active_key_id or list(keys)[-1]
        if active not in keys:
            raise ConfigError("KOMPROMAT_ACTIVE_KEY_ID names a key that KOMPROMAT_KEYS does not hold")
        return active

    def providers_dry(self) -> bool:
        """Whether a provider without a key may run dry (record, not send): never in production."""
        return self.environment != "production"

    def require(self, name: str) -> str:
        """A provider setting that this code path needs; ConfigError names it when unset."""
        value = getattr(self, name)
        if value is None:
            raise ConfigError(f"{name.upper()} is not set")
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in item["loc"]).upper() or "settings"
        problems.append(f"{name}: {item['msg']}")
    return "; ".join(problems)


def _load() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as error:
        raise ConfigError(f"invalid configuration: {_describe(error)}") from None


class _Loaded:
    """The settings, loaded once under a lock: concurrent first requests share one Settings (the
    provider clients are built from it, once per Settings)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: Settings | None = None

    def __call__(self) -> Settings:
        """Load settings once; a missing or bad setting raises ConfigError naming it."""
        settings = self._settings
        if settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = _load()
                settings = self._settings
        return settings

    def cache_clear(self) -> None:
        with self._lock:
            self._settings = None


get_settings = _Loaded()
