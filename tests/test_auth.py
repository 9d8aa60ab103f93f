"""JWT attack matrix, through the http wrapper: each bad token is a 401; a valid
HS256 token and a valid ES256 token (checked against a local JWKS) pass."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pytest_httpserver import HTTPServer

from shared.auth import mint_token
from shared.config import get_settings
from tests import factories as f
from tests.conftest import TEST_JWT_SECRET
from tests.http_helpers import bearer, sample


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(user_id: str | None, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": f"{get_settings().supabase_url}/auth/v1",
        "sub": user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwks(
    httpserver: HTTPServer, ec_key: ec.EllipticCurvePrivateKey, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HTTPServer]:
    """Supabase's JWKS endpoint, served locally with one ES256 key (kid 'key-1')."""
    public_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    public_jwk.update(kid="key-1", alg="ES256", use="sig")
    httpserver.expect_request("/auth/v1/.well-known/jwks.json").respond_with_json({"keys": [public_jwk]})
    monkeypatch.setenv("SUPABASE_URL", httpserver.url_for("/").rstrip("/"))
    yield httpserver


@pytest.fixture
def user_id(owner: Any) -> str:
    return str(f.user(owner))


def _post_echo(headers: dict[str, str]) -> Any:
    return sample("echo").post("/", json={"message": "hi"}, headers=headers)


def test_auth_valid_hs256_token_is_accepted(user_id: str) -> None:
    response = _post_echo(bearer(mint_token(user_id)))
    assert response.status_code == 200, response.json
    assert response.json["user_id"] == user_id


def test_auth_valid_es256_token_from_jwks_is_accepted(jwks: HTTPServer, ec_key: Any, user_id: str) -> None:
    token = jwt.encode(_claims(user_id), ec_key, algorithm="ES256", headers={"kid": "key-1"})
    response = _post_echo(bearer(token))
    assert response.status_code == 200, response.json
    assert response.json["user_id"] == user_id


def _hs256_signed_with(key: bytes, claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


BAD_TOKENS = [
    "expired",
    "wrong_audience",
    "bad_signature",
    "alg_none",
    "hs256_with_public_key",
    "unknown_kid",
    "anon_role",
    "missing_exp",
    "not_a_uuid_subject",
    "service_with_foreign_aud",
    "wrong_issuer",
    "no_issuer",
]


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_auth_bad_token_is_refused_with_401(case: str, jwks: HTTPServer, ec_key: Any, user_id: str) -> None:
    public_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secret = TEST_JWT_SECRET
    tokens = {
        "expired": lambda: jwt.encode(_claims(user_id, exp=int(time.time()) - 3600), secret, "HS256"),
        "wrong_audience": lambda: jwt.encode(_claims(user_id, aud="someone-else"), secret, "HS256"),
        "bad_signature": lambda: jwt.encode(_claims(user_id), "x" * 64, "HS256"),
        "alg_none": lambda: jwt.encode(_claims(user_id), "", algorithm="none"),
        "hs256_with_public_key": lambda: _hs256_signed_with(public_pem, _claims(user_id)),
        "unknown_kid": lambda: jwt.encode(
            _claims(user_id),
            ec.generate_private_key(ec.SECP256R1()),
            algorithm="ES256",
            headers={"kid": "key-404"},
        ),
        "anon_role": lambda: jwt.encode(_claims(None, role="anon", aud=None), secret, "HS256"),
        "missing_exp": lambda: jwt.encode(_claims(user_id, exp=None), secret, "HS256"),
        "not_a_uuid_subject": lambda: jwt.encode(_claims("admin"), secret, "HS256"),
        "service_with_foreign_aud": lambda: jwt.encode(
            _claims(None, role="service_role", aud="another-project"), secret, "HS256"
        ),
        "wrong_issuer": lambda: jwt.encode(_claims(user_id, iss="https://other.supabase.co/auth/v1"), secret, "HS256"),
        "no_issuer": lambda: jwt.encode(_claims(user_id, iss=None), secret, "HS256"),
    }
    response = _post_echo(bearer(tokens[case]()))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_auth_es256_token_signed_by_a_stranger_with_a_known_kid_is_refused(jwks: HTTPServer, user_id: str) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(_claims(user_id), stranger, algorithm="ES256", headers={"kid": "key-1"})
    assert _post_echo(bearer(token)).status_code == 401


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer not-a-jwt", "Bearer a.b.c d"],
)
def test_auth_missing_or_malformed_header_is_refused(header: str | None, user_id: str) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = _post_echo(headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_auth_user_token_on_service_function_is_forbidden(user_id: str) -> None:
    response = sample("service_only").post("/", headers=bearer(mint_token(user_id)))
    assert response.status_code == 403
    assert response.json["error"]["message"] == "this function accepts service callers only"


def test_auth_service_token_on_service_function_is_accepted(database: str) -> None:
    response = sample("service_only").post("/", headers=bearer(mint_token(None, role="service_role")))
    assert response.status_code == 202
    assert response.json == {"ok": True, "role": "service_role"}


def test_auth_service_token_on_user_function_is_forbidden(database: str) -> None:
    response = _post_echo(bearer(mint_token(None, role="service_role")))
    assert response.status_code == 403
