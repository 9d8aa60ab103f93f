"""connect_x against a local server standing in for X's OAuth 2.0 endpoints."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse
from uuid import UUID

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from shared.account import x_oauth
from shared.auth import mint_token
from shared.providers.errors import ProviderRefused, ProviderUnavailable
from tests import factories as f
from tests.fakes import FakeX
from tests.http_helpers import bearer, client

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def x(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, database: str) -> Iterator[FakeX]:
    monkeypatch.setenv("X_API_BASE", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("X_CLIENT_ID", "client-123")
    monkeypatch.setenv("X_CLIENT_SECRET", "x-client-secret-value")
    monkeypatch.setenv("X_REDIRECT_URI", "https://app.threativator.com/x/callback")
    yield FakeX(server=httpserver).install()


@pytest.fixture
def alice(owner: Conn) -> UUID:
    return f.user(owner, "alice")


def _call(user: UUID, body: dict[str, Any]) -> Any:
    return client("connect_x").post("/", json=body, headers=bearer(mint_token(str(user))))


def _start(user: UUID) -> dict[str, list[str]]:
    response = _call(user, {"action": "start"})
    assert response.status_code == 200, response.json
    return parse_qs(urlparse(response.json["authorize_url"]).query)


def test_connect_x_start_builds_a_pkce_authorize_url(x: FakeX, alice: UUID, owner: Conn) -> None:
    query = _start(alice)
    assert set(query["scope"][0].split()) >= {"tweet.write", "media.write", "offline.access"}
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == ["client-123"]
    stored = owner.execute("select state_hash, code_verifier_sealed from public.x_oauth_states").fetchone()
    assert stored is not None
    assert stored["state_hash"] == hashlib.sha256(query["state"][0].encode()).hexdigest()
    assert query["state"][0].encode() not in bytes(stored["code_verifier_sealed"])


def test_connect_x_callback_exchanges_code_with_the_verifier(x: FakeX, alice: UUID, owner: Conn) -> None:
    query = _start(alice)
    response = _call(alice, {"action": "callback", "code": "auth-code", "state": query["state"][0]})
    assert response.status_code == 200, response.json
    assert response.json["connected"] is True
    sent = x.token_requests[0]
    assert sent["grant_type"] == "authorization_code" and sent["code"] == "auth-code"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(sent["code_verifier"].encode()).digest()).rstrip(b"=")
    assert challenge.decode() == query["code_challenge"][0]
    assert sent["authorization"].startswith("Basic ")
    row = owner.execute("select access_token_sealed from public.x_connections where user_id = %s", [alice])
    stored = row.fetchone()
    assert stored is not None and b"access-1" not in bytes(stored["access_token_sealed"])
    assert x_oauth.access_token(alice) == "access-1"


def test_connect_x_replayed_state_is_refused(x: FakeX, alice: UUID) -> None:
    state = _start(alice)["state"][0]
    assert _call(alice, {"action": "callback", "code": "c1", "state": state}).status_code == 200
    replay = _call(alice, {"action": "callback", "code": "c2", "state": state})
    assert replay.status_code == 400 and replay.json["error"]["code"] == "invalid_state"
    assert len(x.token_requests) == 1


def test_connect_x_state_mismatch_is_refused(x: FakeX, alice: UUID, owner: Conn) -> None:
    _start(alice)
    response = _call(alice, {"action": "callback", "code": "c", "state": "not-the-state-we-issued"})
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_state"
    bob = f.user(owner, "bob")
    alices_state = _start(alice)["state"][0]
    assert _call(bob, {"action": "callback", "code": "c", "state": alices_state}).status_code == 400
    assert x.token_requests == []


def test_connect_x_expired_state_is_refused(x: FakeX, alice: UUID, owner: Conn) -> None:
    state = _start(alice)["state"][0]
    owner.execute("update public.x_oauth_states set expires_at = now() - interval '1 second'")
    response = _call(alice, {"action": "callback", "code": "c", "state": state})
    assert response.status_code == 400 and response.json["error"]["code"] == "expired_state"
    assert x.token_requests == []


def test_connect_x_refreshes_an_expired_token(x: FakeX, alice: UUID, owner: Conn) -> None:
    state = _start(alice)["state"][0]
    _call(alice, {"action": "callback", "code": "c", "state": state})
    owner.execute("update public.x_connections set expires_at = now() - interval '1 minute'")
    assert x_oauth.access_token(alice) == "access-2"
    assert x.token_requests[-1]["grant_type"] == "refresh_token"
    assert x.token_requests[-1]["refresh_token"] == "refresh-1"
    assert x_oauth.access_token(alice) == "access-2"  # fresh now: no third request
    assert len(x.token_requests) == 2


def test_connect_x_refused_refresh_is_a_permanent_failure(x: FakeX, alice: UUID, owner: Conn) -> None:
    _call(alice, {"action": "callback", "code": "c", "state": _start(alice)["state"][0]})
    owner.execute("update public.x_connections set expires_at = now() - interval '1 minute'")
    x.token_status = 400
    with pytest.raises(ProviderRefused):
        x_oauth.access_token(alice)
    x.token_status = 503
    with pytest.raises(ProviderUnavailable):
        x_oauth.access_token(alice)


def test_connect_x_disconnect_revokes_and_deletes(x: FakeX, alice: UUID, owner: Conn) -> None:
    _call(alice, {"action": "callback", "code": "c", "state": _start(alice)["state"][0]})
    response = _call(alice, {"action": "disconnect"})
    assert response.json == {"connected": False, "scope": None}
    assert x.revoked == ["access-1"]
    assert owner.execute("select count(*) as n from public.x_connections").fetchone() == {"n": 0}
    assert x_oauth.access_token(alice) is None


def test_connect_x_user_reads_connection_but_not_tokens(x: FakeX, alice: UUID) -> None:
    from shared import db

    _call(alice, {"action": "callback", "code": "c", "state": _start(alice)["state"][0]})
    with db.as_user(alice) as conn:
        assert conn.execute("select user_id from public.x_connections").fetchall() == [{"user_id": alice}]
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(alice) as conn:
        conn.execute("select access_token_sealed from public.x_connections")
