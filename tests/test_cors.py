"""Calling the functions from a browser (issue 21): for every function, the preflight and the real
request from an allowed local origin, from a disallowed one, and an error answer whose headers still
let the page read its body. `make dev`'s defaults allow the usual local origins with no setting;
elsewhere the list is explicit, and a wildcard is refused."""

from __future__ import annotations

from typing import Any

import pytest

from shared.config import DEV_ORIGINS, ConfigError, get_settings
from shared.http import REGISTRY
from tests.http_helpers import FUNCTIONS, client

NAMES = sorted(path.parent.name for path in FUNCTIONS.glob("*/main.py"))
LOCAL = "http://localhost:5173"


@pytest.fixture
def development(monkeypatch: pytest.MonkeyPatch) -> None:
    """make dev's environment: no CORS_ORIGINS set."""
    monkeypatch.setenv("ENVIRONMENT", "development")


def _preflight(name: str, origin: str) -> Any:
    return client(name).open(
        "/",
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, apikey, x-client-info",
        },
    )


def _methods(name: str) -> list[str]:
    client(name)  # importing the function registers it
    return list(REGISTRY[name].methods)


@pytest.mark.parametrize("name", NAMES)
def test_every_function_answers_a_preflight_from_a_local_origin_with_no_setting(name: str, development: None) -> None:
    for origin in DEV_ORIGINS:
        response = _preflight(name, origin)
        assert response.status_code == 204
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert response.headers["Vary"] == "Origin"
        assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {*_methods(name), "OPTIONS"}
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert all(h in allowed for h in ("authorization", "content-type", "apikey", "x-client-info"))


@pytest.mark.parametrize("name", NAMES)
def test_an_error_answer_is_readable_by_an_allowed_page(name: str, development: None, database: str) -> None:
    # Signed out (or the wrong content type for the webhook): a 4xx with a JSON body the page can read.
    response = client(name).post("/", json={}, headers={"Origin": LOCAL})
    assert 400 <= response.status_code < 500, (name, response.status_code, response.json)
    assert response.headers["Access-Control-Allow-Origin"] == LOCAL
    assert response.headers["Vary"] == "Origin"
    exposed = response.headers["Access-Control-Expose-Headers"]
    assert {"Retry-After", "WWW-Authenticate", "Allow"} <= set(exposed.split(", "))
    assert set(response.json["error"]) == {"code", "message", "details"}
    # A method the function does not take: 405, still readable, naming what it takes.
    wrong = client(name).delete("/", headers={"Origin": LOCAL})
    assert wrong.status_code == 405 and wrong.headers["Access-Control-Allow-Origin"] == LOCAL
    assert wrong.headers["Allow"] == ", ".join(_methods(name))


@pytest.mark.parametrize("name", NAMES)
def test_a_disallowed_origin_is_never_told_it_may_read(name: str, development: None, database: str) -> None:
    for origin in ("https://evil.example", "http://localhost:5174", "http://localhost.evil.example:5173", "null"):
        preflight = _preflight(name, origin)
        assert "Access-Control-Allow-Origin" not in preflight.headers
        assert preflight.headers["Vary"] == "Origin"
        response = client(name).post("/", json={}, headers={"Origin": origin})
        assert response.status_code < 500
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Expose-Headers" not in response.headers
        assert response.headers["Vary"] == "Origin"


def test_no_origin_still_varies_by_origin(development: None, database: str) -> None:
    response = client("holding_cell").post("/", json={"action": "balance"})
    assert response.status_code == 401 and response.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_page_can_read_retry_after_on_a_503(development: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.auth import mint_token
    from tests.http_helpers import bearer

    # The database is unreachable (the isolated environment's DATABASE_URL): a 503 with Retry-After.
    token = mint_token("6f1c1a4e-0b7e-4a59-9a9e-3b1b1d1d1d1d")
    response = client("holding_cell").post("/", json={"action": "balance"}, headers={"Origin": LOCAL, **bearer(token)})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.headers["Access-Control-Allow-Origin"] == LOCAL
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]


def test_cors_origins_replaces_the_local_defaults(development: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "http://localhost:4200")
    assert _preflight("holding_cell", "http://localhost:4200").headers["Access-Control-Allow-Origin"] == (
        "http://localhost:4200"
    )
    assert "Access-Control-Allow-Origin" not in _preflight("holding_cell", LOCAL).headers


def test_a_wildcard_echoes_any_origin_in_development_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("CORS_ORIGINS", "*")
    assert _preflight("holding_cell", "http://192.168.1.20:5173").headers["Access-Control-Allow-Origin"] == (
        "http://192.168.1.20:5173"
    )
    for environment in ("production", "test"):
        monkeypatch.setenv("ENVIRONMENT", environment)
        get_settings.cache_clear()
        with pytest.raises(ConfigError, match="CORS_ORIGINS may be '\\*' only in development"):
            get_settings()


def test_outside_development_no_origin_is_allowed_unless_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "x" * 40)
    assert get_settings().allowed_origins() == []
    assert "Access-Control-Allow-Origin" not in _preflight("holding_cell", LOCAL).headers


@pytest.mark.parametrize("bad", ["https://app.example/path", "app.example", "ftp://app.example", "https://a b"])
def test_an_entry_that_is_not_an_origin_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("CORS_ORIGINS", f"http://localhost:3000,{bad}")
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        get_settings()
