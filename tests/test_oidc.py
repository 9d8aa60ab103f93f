"""check_deadlines accepts Cloud Scheduler's Google OIDC token, verified with
google-auth against certificates served locally."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer

from tests.http_helpers import bearer, client

FUNCTION_URL = "https://europe-west1-threativator.cloudfunctions.net/check_deadlines"
SCHEDULER = "scheduler@threativator.iam.gserviceaccount.com"


@pytest.fixture
def google_key(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, database: str) -> Iterator[Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-google")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    httpserver.expect_request("/oauth2/v1/certs").respond_with_json({"kid-1": pem})
    monkeypatch.setenv("GOOGLE_CERTS_URL", httpserver.url_for("/oauth2/v1/certs"))
    monkeypatch.setenv("FUNCTION_URL", FUNCTION_URL)
    monkeypatch.setenv("SCHEDULER_SERVICE_ACCOUNT", SCHEDULER)
    yield key


def _id_token(key: Any, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": FUNCTION_URL,
        "email": SCHEDULER,
        "email_verified": True,
        "sub": "1234",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "kid-1"})


def test_oidc_scheduler_token_is_a_service_caller(google_key: Any) -> None:
    response = client("check_deadlines").post("/", json={"source": "scheduler"}, headers=bearer(_id_token(google_key)))
    assert response.status_code == 200, response.json
    assert response.json["detected"] == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "https://example.com/other"},
        {"email": "attacker@evil.iam.gserviceaccount.com"},
        {"email_verified": False},
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
        {"iss": "https://accounts.google.com.evil"},
    ],
)
def test_oidc_bad_tokens_are_401(google_key: Any, overrides: dict[str, Any]) -> None:
    response = client("check_deadlines").post("/", json={}, headers=bearer(_id_token(google_key, **overrides)))
    assert response.status_code == 401


def test_oidc_token_signed_by_another_key_is_401(google_key: Any) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = client("check_deadlines").post("/", json={}, headers=bearer(_id_token(stranger)))
    assert response.status_code == 401


def test_oidc_not_accepted_when_not_configured(google_key: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.config import get_settings

    monkeypatch.delenv("SCHEDULER_SERVICE_ACCOUNT")
    get_settings.cache_clear()
    response = client("check_deadlines").post("/", json={}, headers=bearer(_id_token(google_key)))
    assert response.status_code == 401
