"""After a flow that handles every kind of secret the product holds (X tokens and
the PKCE verifier, contact-confirmation, witness and unsubscribe tokens, vault
keys, kompromat, provider keys), a dump of the database holds none of them in
plain form. The session-wide log scan lives in tests/conftest.py."""

from __future__ import annotations

import io
import re
import subprocess
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from shared import db, notifications
from shared.auth import mint_token
from shared.dev.localdb import POSTGRES_BIN
from tests import factories as f
from tests.conftest import TEST_JWT_SECRET, TEST_KOMPROMAT_KEYS, TEST_LINK_SECRET
from tests.fakes import FakeGemini, FakeSendGrid, FakeStorage, FakeX
from tests.http_helpers import bearer, client

MARKER = b"KOMPROMAT-PLAINTEXT-0b5e55ed"


def test_database_dump_holds_no_secret(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, database: str, owner: psycopg.Connection[dict[str, Any]]
) -> None:
    base = httpserver.url_for("/").rstrip("/")
    provider_keys = {
        "SENDGRID_API_KEY": "SG.dump-scan-key",
        "GEMINI_API_KEY": "gemini-dump-scan-key",
        "X_CLIENT_SECRET": "x-client-secret-dump-scan",
        "SUPABASE_SERVICE_ROLE_KEY": "service-dump-scan",
    }
    for name, value in {
        **provider_keys,
        "SENDGRID_API_HOST": base,
        "X_API_BASE": base,
        "GEMINI_API_BASE": base,
        "SUPABASE_URL": base,
        "X_CLIENT_ID": "cid",
        "X_REDIRECT_URI": "https://a/cb",
        "NOTIFICATION_RETRY_BUDGET_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    sendgrid = FakeSendGrid(server=httpserver).install()
    FakeX(server=httpserver).install()
    FakeGemini(server=httpserver).install()
    FakeStorage(httpserver).install()
    user = f.user(owner, "secretive")
    token = bearer(mint_token(str(user)))

    # X: PKCE state and verifier, then access and refresh tokens.
    start = client("connect_x").post("/", json={"action": "start"}, headers=token).json
    state = parse_qs(urlparse(start["authorize_url"]).query)["state"][0]
    client("connect_x").post("/", json={"action": "start"}, headers=token)  # a second, unused attempt
    assert (
        client("connect_x")
        .post("/", json={"action": "callback", "code": "c", "state": state}, headers=token)
        .json["connected"]
        is True
    )
    # Kompromat.
    assert (
        client("upload_kompromat")
        .post(
            "/",
            data={"severity": "major", "file": (io.BytesIO(MARKER), "a.txt")},
            content_type="multipart/form-data",
            headers=token,
        )
        .status_code
        == 200
    )
    # A contact's confirmation token, and a witness's pass and fail links.
    with db.as_user(user) as conn:
        conn.execute(
            "insert into public.contacts (user_id, name, email, role) values (%s, 'W', 'w@example.com', '{witness}')",
            [user],
        )
    notifications.send_due()
    owner.execute("update public.contacts set verified = true")
    witness = owner.execute("select id from public.contacts").fetchone()
    assert witness is not None
    goal = f.goal(owner, user, referee="human_witness", witness=witness["id"], days=2, checkpoints=0)
    submission = f.submission(owner, user, f.checkpoint_ids(owner, goal)[0])
    client("grade_submission").post("/", json={"submission_id": str(submission)}, headers=token)
    # An unsubscribe link in a reminder.
    notifications.queue_reminders()
    notifications.send_due()

    emails = "\n".join(sendgrid.text(m) for m in sendgrid.mails)
    link_tokens = re.findall(r"token=([A-Za-z0-9_.-]{16,})", emails)
    assert len(link_tokens) >= 4  # confirm, decline, witness pass and fail, unsubscribe
    dump = subprocess.run(
        [str(POSTGRES_BIN / "pg_dump"), "--data-only", database], capture_output=True, check=True
    ).stdout.decode("utf-8", errors="replace")
    assert "x_connections" in dump and "witness_requests" in dump
    secrets = [
        TEST_JWT_SECRET,
        TEST_LINK_SECRET,
        *TEST_KOMPROMAT_KEYS.replace(",", ":").split(":")[1::2],
        *provider_keys.values(),
        "access-1",
        "refresh-1",
        state,
        MARKER.decode(),
        *link_tokens,
    ]
    leaked = [s for s in secrets if s in dump]
    assert leaked == []
