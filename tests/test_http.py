"""The shared http wrapper, driven end to end through functions-framework."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from shared.auth import mint_token
from tests import factories as f
from tests.http_helpers import bearer, sample


@pytest.fixture
def alice(owner: Any) -> str:
    user = f.user(owner, "alice")
    f.goal(owner, user)
    return str(user)


def _log_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_http_token_printed_by_cli_drives_a_function_end_to_end(alice: str, repo_root: Any) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "shared.dev.cli", "token", alice, "--ttl", "120"],
        capture_output=True,
        text=True,
        check=True,
        cwd=repo_root,
    ).stdout.strip()
    response = sample("echo").post("/", json={"message": "ab", "count": 2}, headers=bearer(printed))
    assert response.status_code == 200
    assert response.json == {"user_id": alice, "echo": "abab", "goals_visible": 1}


def test_http_cli_service_token_needs_no_user(database: str, repo_root: Any) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "shared.dev.cli", "token", "--role", "service_role"],
        capture_output=True,
        text=True,
        check=True,
        cwd=repo_root,
    ).stdout.strip()
    assert sample("service_only").post("/", headers=bearer(printed)).status_code == 202


def test_http_wrong_method_is_405(alice: str) -> None:
    response = sample("echo").get("/", headers=bearer(mint_token(alice)))
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json["error"]["code"] == "method_not_allowed"


def test_http_oversized_body_is_413(alice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "64")
    response = sample("echo").post(
        "/",
        data=json.dumps({"message": "x" * 100}),
        content_type="application/json",
        headers=bearer(mint_token(alice)),
    )
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_http_wrong_content_type_is_415(alice: str) -> None:
    response = sample("echo").post(
        "/",
        data="message=hi",
        content_type="application/x-www-form-urlencoded",
        headers=bearer(mint_token(alice)),
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": "hi", "count": 99}, "count"),
        ({"message": "hi", "count": "many"}, "count"),
    ],
)
def test_http_field_errors_are_400_naming_the_field(alice: str, body: dict[str, Any], field: str) -> None:
    response = sample("echo").post("/", json=body, headers=bearer(mint_token(alice)))
    assert response.status_code == 400
    error = response.json["error"]
    assert error["code"] == "invalid_body"
    assert [d["field"] for d in error["details"]] == [field]
    assert field in error["message"]


@pytest.mark.parametrize("raw", ["{not json", "", "[1, 2]", "null"])
def test_http_malformed_json_is_400(alice: str, raw: str) -> None:
    response = sample("echo").post("/", data=raw, content_type="application/json", headers=bearer(mint_token(alice)))
    assert response.status_code == 400
    assert set(response.json["error"]) == {"code", "message", "details"}


def test_http_validation_errors_never_echo_the_input(alice: str) -> None:
    secret_like = "sk_live_do_not_echo_me"
    response = sample("echo").post("/", json={"message": "hi", "count": secret_like}, headers=bearer(mint_token(alice)))
    assert response.status_code == 400
    assert secret_like not in response.get_data(as_text=True)


def test_http_cors_preflight_for_allowed_origin(monkeypatch: pytest.MonkeyPatch, database: str) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://app.threativator.com, http://localhost:5173")
    response = sample("echo").open(
        "/",
        method="OPTIONS",
        headers={"Origin": "https://app.threativator.com", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.threativator.com"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_http_cors_refuses_unknown_origin(monkeypatch: pytest.MonkeyPatch, alice: str) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://app.threativator.com")
    response = sample("echo").post(
        "/", json={"message": "hi"}, headers={"Origin": "https://evil.example", **bearer(mint_token(alice))}
    )
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_http_crash_is_a_json_500_without_stack_or_secret(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    response = sample("crash").post("/", headers={"X-Cloud-Trace-Context": "abc123/1;o=1"})
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert response.json == {
        "error": {"code": "internal", "message": "internal error", "details": {"trace_id": "abc123"}}
    }
    assert "Traceback" not in text and "SECRET" not in text
    out = capsys.readouterr().out
    assert "SECRET" not in out
    lines = _log_lines(out)
    crash = next(line for line in lines if line["message"] == "unhandled error")
    assert crash["exception"]["type"] == "RuntimeError"
    assert crash["logging.googleapis.com/trace"] == "abc123"


def test_http_writes_one_cloud_logging_line_per_request(alice: str, capsys: pytest.CaptureFixture[str]) -> None:
    token = mint_token(alice)
    sample("echo").post(
        "/", json={"message": "hi"}, headers={**bearer(token), "X-Cloud-Trace-Context": "feedbeef/7;o=1"}
    )
    out = capsys.readouterr().out
    requests = [line for line in _log_lines(out) if line["message"] == "request"]
    assert len(requests) == 1
    line = requests[0]
    assert line["severity"] == "INFO"
    assert line["function"] == "echo"
    assert line["status"] == 200
    assert line["logging.googleapis.com/trace"] == "feedbeef"
    assert isinstance(line["duration_ms"], float)
    assert line["user_id"] == alice
    assert token not in out


def test_http_database_down_is_503(alice: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@/threativator?host={tmp_path}")
    monkeypatch.setenv("DB_POOL_TIMEOUT_SECONDS", "0.5")
    response = sample("echo").post("/", json={"message": "hi"}, headers=bearer(mint_token(alice)))
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json["error"]["code"] == "unavailable"


def test_http_database_guard_becomes_a_clear_403(alice: str, owner: Any) -> None:
    query = "select holding_cell_balance from public.users where id = %s"
    before = owner.execute(query, [alice]).fetchone()
    response = sample("forbidden_write").post("/", headers=bearer(mint_token(alice)))
    assert response.status_code == 403
    assert "managed by the service" in response.json["error"]["message"]
    assert owner.execute(query, [alice]).fetchone() == before


def test_http_missing_setting_is_a_500_naming_nothing_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SUPABASE_URL")
    response = sample("crash").post("/")
    assert response.status_code == 500
    assert response.json["error"]["code"] == "misconfigured"
    assert "SUPABASE_URL" in capsys.readouterr().out


def test_the_first_requests_of_a_new_instance_share_one_open_pool(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh instance's first requests arrive together on several threads: none may find the
    pool created but not yet open (psycopg_pool's PoolClosed, a 500). Opening is slowed down so
    the window is wide enough to hit every time."""
    import threading
    import time

    from psycopg_pool import ConnectionPool

    from shared import db

    real_open = ConnectionPool.open

    def slow_open(self: Any, *args: Any, **kwargs: Any) -> None:
        time.sleep(0.2)
        real_open(self, *args, **kwargs)

    monkeypatch.setattr(ConnectionPool, "open", slow_open)
    db.close_pool()
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def first_request(
        delay: float, barrier: threading.Barrier = barrier, failures: list[BaseException] = failures
    ) -> None:
        barrier.wait()
        time.sleep(delay)  # requests arriving while the first one is still opening the pool
        try:
            with db.as_service() as conn:
                conn.execute("select 1")
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=first_request, args=(n * 0.03,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
