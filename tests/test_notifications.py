"""send_notification with the real SendGrid SDK against a local stand-in."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from shared import db, notifications
from shared.auth import mint_token
from shared.config import get_settings
from tests import factories as f
from tests.conftest import TEST_LINK_SECRET
from tests.fakes import FakeSendGrid
from tests.http_helpers import bearer, client

Conn = psycopg.Connection[dict[str, Any]]
TEMPLATES = {
    t: f"d-{t}"
    for t in (
        "deadline_reminder",
        "submission_result",
        "witness_request",
        "contact_verification",
        "consequence_notification",
        "spared",
        "stake_released",
    )
}


@pytest.fixture
def sendgrid(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, database: str) -> Iterator[FakeSendGrid]:
    monkeypatch.setenv("SENDGRID_API_HOST", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test-key-value")
    monkeypatch.setenv("NOTIFICATION_RETRY_BUDGET_SECONDS", "2")
    yield FakeSendGrid(server=httpserver).install()


@pytest.fixture
def templates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDGRID_TEMPLATE_IDS", json.dumps(TEMPLATES))


@pytest.fixture
def alice(owner: Conn) -> UUID:
    user = f.user(owner, "alice")
    owner.execute("update public.users set display_name = 'Alice', time_zone = 'Europe/Paris' where id = %s", [user])
    return user


def _email_of(owner: Conn, user: UUID) -> str:
    row = owner.execute("select email from public.users where id = %s", [user]).fetchone()
    assert row is not None
    return str(row["email"])


def _post(body: dict[str, Any], token: str | None = None) -> Any:
    token = token or mint_token(None, role="service_role")
    return client("send_notification").post("/", json=body, headers=bearer(token))


def _body(kind: str, user: UUID, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": kind, "user_id": str(user), "template_data": data, **extra}


def _spared(user: UUID, checkpoint: UUID | None = None) -> dict[str, Any]:
    return _body(
        "spared",
        user,
        {"checkpoint_id": str(checkpoint or uuid4()), "goal_title": "Novel", "checkpoint_title": "Outline"},
    )


def test_notification_payload_per_type(sendgrid: FakeSendGrid, templates: None, alice: UUID, owner: Conn) -> None:
    witness = f.contact(owner, alice, email="wanda@example.com")
    cases: list[tuple[str, dict[str, Any], str]] = [
        (
            "deadline_reminder",
            {
                "checkpoint_id": str(uuid4()),
                "goal_title": "Novel",
                "checkpoint_title": "Outline",
                "deadline": "2026-12-04T16:00:00+00:00",
                "window": "1d",
            },
            "stern",
        ),
        (
            "submission_result",
            {
                "submission_id": str(uuid4()),
                "goal_title": "Novel",
                "checkpoint_title": "Outline",
                "outcome": "failed",
                "feedback": "Too short.",
            },
            "disappointed",
        ),
        (
            "witness_request",
            {
                "submission_id": str(uuid4()),
                "request_id": str(uuid4()),
                "contact_id": str(witness),
                "goal_title": "Novel",
                "checkpoint_title": "Outline",
                "owner_name": "Alice",
            },
            "stern",
        ),
        (
            "consequence_notification",
            {
                "consequence_id": str(uuid4()),
                "goal_title": "Novel",
                "kind": "monetary",
                "amount_cents": 3000,
                "charity": "GiveDirectly",
            },
            "menacing",
        ),
        (
            "spared",
            {"checkpoint_id": str(uuid4()), "goal_title": "Novel", "checkpoint_title": "Outline"},
            "grudging_approval",
        ),
        ("stake_released", {"goal_id": str(uuid4()), "goal_title": "Novel", "amount_cents": 9000}, "grudging_approval"),
    ]
    for kind, data, emotion in cases:
        response = _post(_body(kind, alice, data))
        assert response.status_code == 200, response.json
        assert response.json["status"] == "sent" and response.json["provider_message_id"].startswith("sg-")
        mail = sendgrid.mails[-1].json
        assert mail["template_id"] == f"d-{kind}"
        assert mail["from"]["email"] == "notifications@threativator.com"
        dynamic = mail["personalizations"][0]["dynamic_template_data"]
        assert dynamic["emotion"] == emotion
        assert dynamic["avatar_url"] == f"https://threativator.com/avatars/{emotion}.png"
        expected_to = "wanda@example.com" if kind == "witness_request" else _email_of(owner, alice)
        assert sendgrid.to(sendgrid.mails[-1]) == [expected_to]
        assert sendgrid.mails[-1].headers["Authorization"] == "Bearer SG.test-key-value"
    reminder, result, witness_mail, money = (
        m.json["personalizations"][0]["dynamic_template_data"] for m in sendgrid.mails[:4]
    )
    assert "Friday 04 December at 17:00 (Europe/Paris)" in reminder["paragraphs"][0]
    assert reminder["links"]["unsubscribe"].startswith("http://127.0.0.1:5173/unsubscribe?token=")
    assert "Too short." in " ".join(result["paragraphs"])
    assert set(witness_mail["links"]) == {"pass", "fail"}
    assert "$30.00" in money["paragraphs"][0] and "GiveDirectly" in money["paragraphs"][0]


def test_humiliation_notice_is_vague_and_carries_no_secrets(sendgrid: FakeSendGrid, alice: UUID) -> None:
    response = _post(
        _body(
            "consequence_notification",
            alice,
            {"consequence_id": str(uuid4()), "goal_title": "Novel", "kind": "humiliation"},
        )
    )
    assert response.json["status"] == "sent"
    raw = json.dumps(sendgrid.mails[-1].json)
    assert "A consequence was carried out. We will not say more." in raw
    for leak in ("kompromat", "attachment", "photo", '@example.com", "name', TEST_LINK_SECRET, "SG.test"):
        assert leak not in raw.replace(sendgrid.to(sendgrid.mails[-1])[0], "")
    assert "attachments" not in sendgrid.mails[-1].json


def test_plain_text_and_html_without_template(sendgrid: FakeSendGrid, alice: UUID) -> None:
    assert _post(_spared(alice)).json["status"] == "sent"
    mail = sendgrid.mails[-1].json
    assert "template_id" not in mail
    types = {c["type"]: c["value"] for c in mail["content"]}
    assert "The roulette spun, and it spared you." in types["text/plain"]
    assert "<p>You missed “Outline”" in types["text/html"]
    assert mail["subject"] == "Spared, this time: Outline"


def test_same_request_ten_times_concurrently_sends_once(sendgrid: FakeSendGrid, alice: UUID, owner: Conn) -> None:
    """Ten callers at once: one row, one email. The function is loaded once, as an instance loads it,
    and the ten start together: loading it ten times at once in one process (create_app rewrites the
    shared sys.modules["main"] and sys.path each time) tested the loader, not the function."""
    body = _spared(alice, uuid4())
    app = client("send_notification")
    token = mint_token(None, role="service_role")
    start = threading.Barrier(10)

    def post(_: int) -> Any:
        start.wait()
        return app.application.test_client().post("/", json=body, headers=bearer(token))

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(post, range(10)))
    assert all(r.status_code == 200 for r in responses)
    assert len({r.json["id"] for r in responses}) == 1
    assert sum(r.json["created"] for r in responses) == 1
    assert len(sendgrid.mails) == 1
    assert owner.execute("select count(*) as n from public.notifications").fetchone() == {"n": 1}


def test_asking_again_answers_the_existing_row(sendgrid: FakeSendGrid, alice: UUID) -> None:
    body = _spared(alice)
    first, second = _post(body), _post({**body, "template_data": {**body["template_data"], "goal_title": "Other"}})
    assert first.json["id"] == second.json["id"] and second.json["created"] is False
    assert second.json["status"] == "sent"
    assert len(sendgrid.mails) == 1
    keyed = _post({**_spared(alice), "dedupe_key": "custom-key-1"})
    again = _post({**_spared(alice), "dedupe_key": "custom-key-1"})
    assert keyed.json["id"] == again.json["id"] and len(sendgrid.mails) == 2


def test_429_then_success(sendgrid: FakeSendGrid, alice: UUID) -> None:
    sendgrid.fail_next(429, {"Retry-After": "0.1"})
    response = _post(_spared(alice))
    assert response.json["status"] == "sent"
    assert sendgrid.attempts == 2 and len(sendgrid.mails) == 1


def test_provider_400_gives_a_failed_row_with_the_reason(sendgrid: FakeSendGrid, alice: UUID, owner: Conn) -> None:
    sendgrid.fail_next(400)
    response = _post(_spared(alice))
    assert response.json["status"] == "failed"
    assert response.json["last_error"] == "sendgrid 400: personalizations.0.to: injected"
    assert sendgrid.attempts == 1


def test_5xx_beyond_the_budget_stays_queued_for_the_scheduler(
    sendgrid: FakeSendGrid, alice: UUID, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFICATION_RETRY_BUDGET_SECONDS", "0")
    get_settings.cache_clear()
    sendgrid.fail_next(503)
    response = _post(_spared(alice))
    assert response.json["status"] == "queued"
    assert notifications.send_due() == {}  # not due yet: backing off
    owner.execute("update public.notifications set next_attempt_at = now()")
    assert notifications.send_due() == {"sent": 1}
    assert len(sendgrid.mails) == 1


def test_user_token_is_403(sendgrid: FakeSendGrid, alice: UUID, owner: Conn) -> None:
    response = _post(_spared(alice), token=mint_token(str(alice)))
    assert response.status_code == 403
    assert owner.execute("select count(*) as n from public.notifications").fetchone() == {"n": 0}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "love_letter", "user_id": str(uuid4()), "template_data": {}}, "type"),
        ({"type": "spared", "user_id": str(uuid4()), "template_data": {"goal_title": "x"}}, "checkpoint_id"),
        (
            {
                "type": "stake_released",
                "user_id": "not-a-uuid",
                "template_data": {"goal_id": str(uuid4()), "goal_title": "x", "amount_cents": 1},
            },
            "user_id",
        ),
        (
            {
                "type": "submission_result",
                "user_id": str(uuid4()),
                "template_data": {
                    "submission_id": str(uuid4()),
                    "goal_title": "g",
                    "checkpoint_title": "c",
                    "outcome": "bribed",
                },
            },
            "outcome",
        ),
    ],
)
def test_unknown_types_and_bad_payloads_are_400(sendgrid: FakeSendGrid, body: dict[str, Any], field: str) -> None:
    response = _post(body)
    assert response.status_code == 400
    assert field in response.json["error"]["message"]


def test_witness_request_to_an_unverified_contact_is_refused(sendgrid: FakeSendGrid, alice: UUID, owner: Conn) -> None:
    contact = f.contact(owner, alice, verified=False)
    owner.execute("delete from public.notifications")
    response = _post(
        _body(
            "witness_request",
            alice,
            {
                "submission_id": str(uuid4()),
                "request_id": str(uuid4()),
                "contact_id": str(contact),
                "goal_title": "Novel",
                "checkpoint_title": "Outline",
                "owner_name": "Alice",
            },
        )
    )
    assert response.status_code == 409
    assert sendgrid.mails == []


# -----------------------------------------------------------------------------
# Reminders over a simulated week
# -----------------------------------------------------------------------------
def test_reminder_schedule_over_a_simulated_week(sendgrid: FakeSendGrid, owner: Conn) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    busy, muted = f.user(owner, "busy"), f.user(owner, "muted")
    owner.execute("update public.users set mute_reminders = true where id = %s", [muted])
    goals = {user: f.goal(owner, user, days=7, checkpoints=3) for user in (busy, muted)}
    done = f.checkpoint_ids(owner, goals[busy])[0]
    owner.execute("update public.checkpoints set status = 'completed' where id = %s", [done])
    seen = 0
    for step in range(0, 7 * 24 * 4 + 8):  # every 15 minutes for a week and a bit
        seen += notifications.queue_reminders(start + timedelta(minutes=15 * step))
    rows = owner.execute(
        "select user_id, subject_id, template_data->>'window' as band from public.notifications"
        " where type = 'deadline_reminder'"
    ).fetchall()
    assert len(rows) == seen
    per_checkpoint: dict[UUID, list[str]] = {}
    for row in rows:
        assert row["user_id"] == busy
        per_checkpoint.setdefault(row["subject_id"], []).append(row["band"])
    open_checkpoints = f.checkpoint_ids(owner, goals[busy])[1:]
    assert set(per_checkpoint) == set(open_checkpoints)
    for checkpoint, bands in per_checkpoint.items():
        deadline = owner.execute("select deadline from public.checkpoints where id = %s", [checkpoint]).fetchone()
        assert deadline is not None
        expected = [
            b
            for b, span in (("3d", 3 * 24), ("1d", 24), ("1h", 1))
            if deadline["deadline"] - timedelta(hours=span) >= start - timedelta(minutes=15)
        ]
        assert sorted(bands) == sorted(expected), (checkpoint, bands)
    assert done not in per_checkpoint


def test_reminder_unsubscribe_link_works(sendgrid: FakeSendGrid, alice: UUID, owner: Conn, pg_url: str) -> None:
    goal = f.goal(owner, alice, days=2, checkpoints=0)
    assert notifications.queue_reminders() == 1
    assert notifications.send_due() == {"sent": 1}
    link = sendgrid.mails[-1].json["personalizations"][0]
    text = sendgrid.text(sendgrid.mails[-1])
    match = re.search(r"unsubscribe\?token=([0-9a-f]+)", text)
    assert match is not None and "dynamic_template_data" not in link
    with db.as_role("anon", {"role": "anon"}) as conn:
        assert conn.execute("select public.unsubscribe_reminders(%s) as ok", [match.group(1)]).fetchone() == {
            "ok": True
        }
    muted = owner.execute("select mute_reminders from public.users where id = %s", [alice]).fetchone()
    assert muted == {"mute_reminders": True}
    owner.execute("delete from public.notifications")
    assert notifications.queue_reminders(datetime.now(UTC) + timedelta(hours=47, minutes=30)) == 0
    with pytest.raises(psycopg.Error, match="not valid"), db.as_role("anon", {"role": "anon"}) as conn:
        conn.execute("select public.unsubscribe_reminders('0123456789abcdef0123')")
    assert goal


def test_a_reminder_repeats_the_open_checkpoints_challenge_phrase(
    sendgrid: FakeSendGrid, alice: UUID, owner: Conn
) -> None:
    goal = f.goal(owner, alice, days=2, checkpoints=0, challenge=True)
    [final] = f.checkpoint_ids(owner, goal)
    found = owner.execute("select proof_phrase from public.checkpoints where id = %s", [final]).fetchone()
    assert found is not None and found["proof_phrase"]
    assert notifications.queue_reminders() == 1
    assert notifications.send_due() == {"sent": 1}
    text = sendgrid.text(sendgrid.mails[-1])
    assert f"Your proof must show this checkpoint's phrase: “{found['proof_phrase']}”" in text
    # Without the challenge, a reminder names no phrase.
    plain = f.goal(owner, f.user(owner, "bob"), days=2, checkpoints=0)
    assert notifications.queue_reminders() == 1 and notifications.send_due() == {"sent": 1}
    assert "phrase" not in sendgrid.text(sendgrid.mails[-1]) and plain


# -----------------------------------------------------------------------------
# Contact verification
# -----------------------------------------------------------------------------
def _add_contact(user: UUID, email: str) -> UUID:
    with db.as_user(user) as conn:
        row = conn.execute(
            "insert into public.contacts (user_id, name, email, role) values (%s, 'Bo', %s,"
            " '{witness,consequence_target}') returning id",
            [user, email],
        ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def _confirm_token(sendgrid: FakeSendGrid) -> str:
    match = re.search(r"contacts/confirm\?token=([A-Za-z0-9_-]+)", sendgrid.text(sendgrid.mails[-1]))
    assert match is not None
    return match.group(1)


def _anon(sql: str, *params: Any) -> Any:
    with db.as_role("anon", {"role": "anon"}) as conn:
        return conn.execute(sql, list(params)).fetchone()


def test_contact_verification_good_reused_expired_other(sendgrid: FakeSendGrid, alice: UUID, owner: Conn) -> None:
    first, second = _add_contact(alice, "first@example.com"), _add_contact(alice, "second@example.com")
    assert notifications.send_due() == {"sent": 2}
    assert sorted(sendgrid.to(m)[0] for m in sendgrid.mails) == ["first@example.com", "second@example.com"]
    tokens = {
        sendgrid.to(m)[0]: re.search(r"confirm\?token=([A-Za-z0-9_-]+)", sendgrid.text(m)).group(1)  # type: ignore[union-attr]
        for m in sendgrid.mails
    }
    stored = owner.execute("select verification_token_hash from public.contacts where id = %s", [first]).fetchone()
    assert stored is not None and tokens["first@example.com"] not in json.dumps(stored)

    assert _anon("select public.confirm_contact(%s) as r", tokens["first@example.com"]) == {"r": "verified"}
    rows = {r["id"]: r["verified"] for r in owner.execute("select id, verified from public.contacts").fetchall()}
    assert rows == {first: True, second: False}  # that contact and nothing else

    with pytest.raises(psycopg.Error, match="not valid or was already used"):
        _anon("select public.confirm_contact(%s)", tokens["first@example.com"])
    owner.execute(
        "update public.contacts set verification_expires_at = now() - interval '1 minute' where id = %s", [second]
    )
    with pytest.raises(psycopg.Error, match="expired"):
        _anon("select public.confirm_contact(%s)", tokens["second@example.com"])
    with pytest.raises(psycopg.Error, match="token is required"):
        _anon("select public.confirm_contact(null)")
    with pytest.raises(psycopg.Error, match="not valid"):
        _anon("select public.confirm_contact('guessing-a-token-value-123')")
    assert owner.execute("select verified from public.contacts where id = %s", [second]).fetchone() == {
        "verified": False
    }


def test_anon_cannot_verify_by_writing_the_table(sendgrid: FakeSendGrid, alice: UUID, owner: Conn) -> None:
    contact = _add_contact(alice, "x@example.com")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _anon("update public.contacts set verified = true where id = %s", contact)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _anon("select private.answer_contact_verification(null, false) from public.contacts")
    assert owner.execute("select verified from public.contacts where id = %s", [contact]).fetchone() == {
        "verified": False
    }


def test_declined_contact_never_receives_anything_again(sendgrid: FakeSendGrid, alice: UUID, owner: Conn) -> None:
    contact = _add_contact(alice, "nope@example.com")
    notifications.send_due()
    token = _confirm_token(sendgrid)
    assert _anon("select public.decline_contact(%s) as r", token) == {"r": "declined"}
    owner.execute("update public.contacts set verified = true where id = %s", [contact])  # even if verified later
    response = _post(
        _body(
            "witness_request",
            alice,
            {
                "submission_id": str(uuid4()),
                "request_id": str(uuid4()),
                "contact_id": str(contact),
                "goal_title": "Novel",
                "checkpoint_title": "Outline",
                "owner_name": "Alice",
            },
        )
    )
    assert response.json["status"] == "suppressed"
    assert len(sendgrid.mails) == 1  # only the verification email itself


# -----------------------------------------------------------------------------
# Notices born with their state change
# -----------------------------------------------------------------------------
def test_completed_goal_queues_and_sends_stake_released_once(sendgrid: FakeSendGrid, alice: UUID, owner: Conn) -> None:
    goal = f.goal(owner, alice, stake="30.00", checkpoints=0)
    [final] = f.checkpoint_ids(owner, goal)
    submission = f.submission(owner, alice, final)
    owner.execute("select app.record_grade(%s, 'passed')", [submission])
    rows = owner.execute(
        "select template_data, status::text as status from public.notifications where type = 'stake_released'"
    ).fetchall()
    assert rows == [{"template_data": {"goal_id": str(goal), "amount_cents": 3000}, "status": "queued"}]
    assert notifications.send_due() == {"sent": 2}  # the stake released, and the submission's result
    released = [m for m in sendgrid.mails if m.json["custom_args"]["type"] == "stake_released"]
    assert len(released) == 1
    assert "$30.00 is back in your holding cell" in sendgrid.text(released[0])
    assert "Write the book" in sendgrid.text(released[0])  # the title is read at send time
    assert notifications.send_due() == {}
    assert len([m for m in sendgrid.mails if m.json["custom_args"]["type"] == "stake_released"]) == 1


def test_failed_grade_rolled_back_leaves_no_notice(alice: UUID, owner: Conn) -> None:
    goal = f.goal(owner, alice, checkpoints=0)
    [final] = f.checkpoint_ids(owner, goal)
    submission = f.submission(owner, alice, final, status="passed")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        owner.execute("select app.record_grade(%s, 'failed')", [submission])  # already graded: refused
    assert owner.execute("select count(*) as n from public.notifications").fetchone() == {"n": 0}


def test_poisoned_row_does_not_stop_the_others(sendgrid: FakeSendGrid, alice: UUID, owner: Conn) -> None:
    goal = f.goal(owner, alice, stake="30.00", checkpoints=0)
    [final] = f.checkpoint_ids(owner, goal)
    # A row no renderer can read (as a bad hand edit or an old shape would leave it), queued first.
    owner.execute(
        "insert into public.notifications (type, user_id, subject_id, dedupe_key, template_data, next_attempt_at)"
        " values ('spared', %s, %s, 'poison', '{}', now() - interval '1 hour')",
        [alice, final],
    )
    submission = f.submission(owner, alice, final)
    owner.execute("select app.record_grade(%s, 'passed')", [submission])
    assert notifications.send_due() == {"failed": 1, "sent": 2}
    assert {m.json["custom_args"]["type"] for m in sendgrid.mails} == {"stake_released", "submission_result"}
    poisoned = owner.execute("select status::text, last_error from public.notifications where dedupe_key = 'poison'")
    assert poisoned.fetchone() == {"status": "failed", "last_error": "could not be rendered: ValidationError"}
    assert notifications.send_due() == {}  # failed for good: never taken again


def test_address_the_sdk_cannot_parse_fails_that_row_alone(sendgrid: FakeSendGrid, alice: UUID, owner: Conn) -> None:
    owner.execute("update public.users set email = 'a,b@example.com' where id = %s", [alice])
    bob = f.user(owner, "bob")
    for user in (alice, bob):
        _post(_body("stake_released", user, {"goal_id": str(uuid4()), "amount_cents": 100}))
    rows = owner.execute(
        "select user_id, status::text, last_error from public.notifications order by created_at"
    ).fetchall()
    assert [r["status"] for r in rows] == ["failed", "sent"]
    assert rows[0]["last_error"] == "a recipient address is not a valid email address"
    assert len(sendgrid.mails) == 1


def test_an_answer_lost_after_sendgrid_took_the_mail_is_never_resent(
    sendgrid: FakeSendGrid, alice: UUID, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SendGrid accepted the mail, then its answer came too late: a retry would send it twice (SendGrid
    has no idempotency key). The row is sent, marked unconfirmed; no pass resends it."""
    monkeypatch.setenv("SENDGRID_TIMEOUT_SECONDS", "0.3")
    sendgrid.timeout_delay = 0.8
    sendgrid.fail_next("timeout")
    response = _post(_spared(alice))
    assert response.status_code == 200 and response.json["status"] == "sent"
    row = owner.execute("select status::text, last_error from public.notifications").fetchone()
    assert row is not None and row["status"] == "sent" and row["last_error"].startswith("unconfirmed, not resent")
    assert notifications.send_due() == {}
    assert len(sendgrid.mails) == 1
