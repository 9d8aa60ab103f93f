"""Settings fail fast, name what is missing, and never show secrets."""

from __future__ import annotations

import pytest

from shared.config import ConfigError, get_settings


def test_config_missing_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_URL")
    with pytest.raises(ConfigError, match="SUPABASE_URL"):
        get_settings()


def test_config_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2-db-password@db/x")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-key-value-123")
    settings = get_settings()
    text = repr(settings) + str(settings) + str(settings.model_dump())
    for secret in ("hunter2-db-password", "service-key-value-123", "test-jwt-secret"):
        assert secret not in text


@pytest.mark.parametrize("secret", ["super-secret-jwt-token-with-at-least-32-characters-long", "short"])
def test_config_production_refuses_placeholder_or_short_secrets(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("SUPABASE_JWT_SECRET", secret)
    with pytest.raises(ConfigError, match="SUPABASE_JWT_SECRET"):
        get_settings()


def test_config_development_accepts_the_dev_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "super-secret-jwt-token-with-at-least-32-characters-long")
    assert get_settings().environment == "development"


def test_config_cors_origins_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example/, http://localhost:5173")
    assert get_settings().cors_origins == ["https://a.example", "http://localhost:5173"]


def test_config_provider_base_urls_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("STRIPE_API_BASE", "file:///etc/passwd")
    with pytest.raises(ConfigError, match="STRIPE_API_BASE"):
        get_settings()
