"""Supabase as it is now (issue 16): the new API keys as service credentials, JWKS-only projects,
anonymous callers from a logged-out browser, and Database Webhooks. Through HTTP."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pytest_httpserver import HTTPServer

from shared.auth import mint_token
from shared.config import get_settings
from tests import factories as f
from tests.conftest import Providers
from tests.http_helpers import bearer, client
from tests.images import picture
from tests.test_auth import _claims, ec_key, jwks  # noqa: F401 - the JWKS endpoint fixtures
from tests.test_cron import queued, vault
from tests.test_grading import PASS, Stack, _verdict, _witness_links, file_submission, row, witness_submission
from tests.test_grading import stack as stack

Conn = psycopg.Connection[dict[str, Any]]
OLD_KEY = "sb_secret_old0123456789abcdefABCDEF"
NEW_KEY = "sb_secret_new0123456789abcdefABCDEF"
PUBLISHABLE = "sb_publishable_0123456789abcdefABCDEF"
WEBHOOK_SECRET = "whs-0123456789abcdef0123456789abcdef"


@pytest.fixture
def secret_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_SECRET_KEYS", f"{OLD_KEY}, {NEW_KEY}")  # a rotation, overlapping


def _service_calls() -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        "check_deadlines": ("check_deadlines", {"source": "test"}),
        "trigger_consequence": ("trigger_consequence", {"consequence_id": str(uuid4())}),
        "send_notification": (
            "send_notification",
            {
                "type": "stake_released",
                "user_id": str(uuid4()),
                "template_data": {"goal_id": str(uuid4()), "goal_title": "g", "amount_cents": 1},
            },
        ),
    }


@pytest.mark.parametrize("function", ["check_deadlines", "trigger_consequence", "send_notification"])
@pytest.mark.parametrize("where", ["apikey", "bearer"])
@pytest.mark.parametrize("key", [OLD_KEY, NEW_KEY])
def test_a_listed_secret_key_is_a_service_credential(
    providers: Providers, secret_keys: None, function: str, where: str, key: str
) -> None:
    name, body = _service_calls()[function]
    headers = {"apikey": key} if where == "apikey" else bearer(key)
    response = client(name).post("/", json=body, headers=headers)
    # Past authentication: the answer is the function's own (an unknown consequence is 404).
    assert response.status_code in (200, 404), response.json
    assert response.json.get("error", {}).get("code") not in ("unauthorized", "forbidden")


@pytest.mark.parametrize(
    "headers",
    [
        {"apikey": "sb_secret_unlisted0123456789abcdef"},
        bearer("sb_secret_unlisted0123456789abcdef"),
        {"apikey": NEW_KEY[:-1] + "G"},  # a near miss
        bearer(NEW_KEY + "x"),
        {"apikey": PUBLISHABLE},  # never a service credential
        bearer(PUBLISHABLE),
        {"apikey": PUBLISHABLE, **bearer(PUBLISHABLE)},
        {},
    ],
    ids=[
        "unlisted-apikey",
        "unlisted-bearer",
        "near-miss",
        "longer",
        "publishable",
        "publishable-bearer",
        "both",
        "none",
    ],
)
@pytest.mark.parametrize("function", ["check_deadlines", "trigger_consequence", "send_notification"])
def test_anything_else_is_refused_on_service_functions(
    providers: Providers, secret_keys: None, function: str, headers: dict[str, str]
) -> None:
    name, body = _service_calls()[function]
    response = client(name).post("/", json=body, headers=headers)
    assert response.status_code == 401 and response.json["error"]["code"] == "unauthorized"


def test_a_legacy_service_role_jwt_keeps_working(providers: Providers, secret_keys: None) -> None:
    response = client("check_deadlines").post("/", json={}, headers=bearer(mint_token(None, role="service_role")))
    assert response.status_code == 200


def test_a_secret_key_is_not_a_user(providers: Providers, secret_keys: None) -> None:
    response = client("holding_cell").post("/", json={"action": "balance"}, headers={"apikey": NEW_KEY})
    assert response.status_code == 403


# -----------------------------------------------------------------------------
# User tokens: JWKS only, and the issuer
# -----------------------------------------------------------------------------
def test_a_jwks_only_project_accepts_es256_and_refuses_hs256(
    jwks: HTTPServer,  # noqa: F811
    ec_key: ec.EllipticCurvePrivateKey,  # noqa: F811
    owner: Conn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = str(f.user(owner))
    hs256 = mint_token(user)  # signed while the secret is still configured
    monkeypatch.delenv("SUPABASE_JWT_SECRET")
    get_settings.cache_clear()
    es256 = jwt.encode(_claims(user), ec_key, algorithm="ES256", headers={"kid": "key-1"})
    accepted = client("holding_cell").post("/", json={"action": "balance"}, headers=bearer(es256))
    assert accepted.status_code == 200, accepted.json
    refused = client("holding_cell").post("/", json={"action": "balance"}, headers=bearer(hs256))
    assert refused.status_code == 401
    wrong_issuer = jwt.encode(
        _claims(user, iss="https://evil.example/auth/v1"), ec_key, algorithm="ES256", headers={"kid": "key-1"}
    )
    assert client("holding_cell").post("/", json={"action": "balance"}, headers=bearer(wrong_issuer)).status_code == 401


# -----------------------------------------------------------------------------
# A logged-out browser: the anon key or a publishable key identifies nobody
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("anonymous", ["anon_jwt", "publishable"])
def test_a_witness_verdict_from_a_logged_out_browser_is_answered_on_its_merits(
    stack: Stack,
    owner: Conn,
    anonymous: str,
) -> None:
    alice = f.user(owner, "alice")
    submission = witness_submission(owner, stack, alice)
    key = mint_token(None, role="anon") if anonymous == "anon_jwt" else PUBLISHABLE
    headers = {"apikey": key, **bearer(key)}
    tokens = _witness_links(stack)
    forged = client("grade_submission").post(
        "/", json={"action": "witness_verdict", "token": "x" * 40, "verdict": "pass"}, headers=headers
    )
    assert forged.status_code in (400, 401, 403, 404) and forged.json["error"]["code"] != "unauthorized"
    answered = client("grade_submission").post(
        "/", json={"action": "witness_verdict", "token": tokens["pass"], "verdict": "pass"}, headers=headers
    )
    assert answered.status_code == 200 and answered.json["status"] == "passed"
    assert row(owner, submission)["status"] == "passed"
    # User-only actions still want a user.
    graded = client("grade_submission").post("/", json={"submission_id": str(submission)}, headers=headers)
    assert graded.status_code == 401
    balance = client("holding_cell").post("/", json={"action": "balance"}, headers=headers)
    assert balance.status_code == 401
    assert _verdict(tokens["fail"], "fail").status_code == 409  # the link was used


# -----------------------------------------------------------------------------
# Database Webhooks
# -----------------------------------------------------------------------------
def _webhook(table: str, record_id: UUID, secret: str | None, **extra: Any) -> dict[str, Any]:
    body = {"type": "INSERT", "table": table, "schema": "public", "record": {"id": str(record_id)}, "old_record": None}
    headers = {"X-Webhook-Secret": secret} if secret is not None else {}
    function = "grade_submission" if table == "submissions" else "send_notification"
    response = client(function).post("/", json={**body, **extra}, headers=headers)
    return {"status": response.status_code, "json": response.json}


@pytest.fixture
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_WEBHOOK_SECRET", WEBHOOK_SECRET)


def test_a_submission_webhook_grades_once(stack: Stack, owner: Conn, webhook_secret: None) -> None:
    alice = f.user(owner, "alice")
    stack.gemini.default = PASS
    submission = file_submission(owner, stack, alice, picture(1))
    for secret in ("wrong-secret-0123456789abcdef012345", None):
        refused = _webhook("submissions", submission, secret)
        assert refused["status"] == 401
    assert row(owner, submission)["status"] == "pending" and stack.gemini.calls == []
    first = _webhook("submissions", submission, WEBHOOK_SECRET)
    again = _webhook("submissions", submission, WEBHOOK_SECRET)  # Supabase delivered it twice
    assert first["status"] == again["status"] == 200
    assert first["json"]["status"] == again["json"]["status"] == "passed"
    assert len(stack.gemini.calls) == 1
    # The shape is the webhook's alone: a user's JWT cannot use it, nor another table.
    user_try = client("grade_submission").post(
        "/",
        json={"type": "INSERT", "table": "submissions", "schema": "public", "record": {"id": str(submission)}},
        headers=bearer(mint_token(str(alice))),
    )
    assert user_try.status_code == 401
    other_table = client("grade_submission").post(
        "/",
        json={"type": "INSERT", "table": "goals", "schema": "public", "record": {"id": str(submission)}},
        headers={"X-Webhook-Secret": WEBHOOK_SECRET},
    )
    assert other_table.status_code == 400


def test_a_notification_webhook_sends_the_row_once(providers: Providers, owner: Conn, webhook_secret: None) -> None:
    user = f.user(owner)
    row_id = owner.execute(
        "insert into public.notifications (type, user_id, subject_id, dedupe_key, template_data)"
        " values ('stake_released', %s, %s, 'webhook-test', %s) returning id",
        [user, uuid4(), psycopg.types.json.Jsonb({"goal_id": str(uuid4()), "amount_cents": 100})],
    ).fetchone()
    assert row_id is not None
    assert _webhook("notifications", row_id["id"], "not-the-secret-0123456789abcdef0123")["status"] == 401
    assert providers.sendgrid.mails == []
    first = _webhook("notifications", row_id["id"], WEBHOOK_SECRET)
    second = _webhook("notifications", row_id["id"], WEBHOOK_SECRET)
    assert first["status"] == second["status"] == 200 and second["json"]["status"] == "sent"
    assert len(providers.sendgrid.mails) == 1


def test_the_webhook_triggers_post_supabases_payload_with_the_vault_secret(owner: Conn) -> None:
    from shared.dev.cli import WEBHOOKS_SQL

    user = f.user(owner)
    checkpoint = f.checkpoint_ids(owner, f.goal(owner, user))[0]
    with owner.transaction(force_rollback=True):
        owner.execute(WEBHOOKS_SQL)
        # Not configured yet: the insert goes through, nothing is posted.
        f.submission(owner, user, checkpoint)
        assert queued(owner) == []
        vault(
            owner,
            grade_submission_url="https://fn.example/grade_submission",
            send_notification_url="https://fn.example/send_notification",
            database_webhook_secret=WEBHOOK_SECRET,
        )
        submission = f.submission(owner, user, checkpoint)
        [call] = queued(owner)
    assert call["url"] == "https://fn.example/grade_submission"
    assert call["headers"] == {"Content-Type": "application/json", "X-Webhook-Secret": WEBHOOK_SECRET}
    assert call["body"] == {
        "type": "INSERT",
        "table": "submissions",
        "schema": "public",
        "record": {"id": str(submission)},
        "old_record": None,
    }
    assert WEBHOOK_SECRET not in WEBHOOKS_SQL
