"""One typed Settings object, loaded once from the environment."""

from __future__ import annotations

import functools
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
    supabase_jwt_secret: SecretStr
    supabase_service_role_key: SecretStr | None = None
    jwks_cache_seconds: int = Field(default=600, ge=0)

    # HTTP
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1_000_000, gt=0)

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

    @field_validator("supabase_url", "gemini_api_base", "stripe_api_base", "sendgrid_api_host", "x_api_base")
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
            if len(self.supabase_jwt_secret.get_secret_value()) < 32:
                raise ValueError("SUPABASE_JWT_SECRET must be at least 32 characters")
        return self

    @property
    def jwks_url(self) -> str:
        return f"{self.supabase_url}/auth/v1/.well-known/jwks.json"


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in item["loc"]).upper() or "settings"
        problems.append(f"{name}: {item['msg']}")
    return "; ".join(problems)


@functools.cache
def get_settings() -> Settings:
    """Load settings once; a missing or bad setting raises ConfigError naming it."""
    try:
        return Settings()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as error:
        raise ConfigError(f"invalid configuration: {_describe(error)}") from None
