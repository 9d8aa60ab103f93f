"""The consequence engine: check_deadlines and trigger_consequence, exactly once,
against local stand-ins for Stripe, SendGrid and X."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from shared import notifications
from shared.auth import mint_token
from shared.commitments import engine
from shared.config import get_settings
from tests import factories as f
from tests.conftest import Providers
from tests.http_helpers import bearer, client
from tests.test_sealing import PNG

Conn = psycopg.Connection[dict[str, Any]]


def service() -> dict[str, str]:
    return bearer(mint_token(None, role="service_role"))


def check() -> dict[str, Any]:
    response = client("check_deadlines").post("/", json={"source": "test"}, headers=service())
    assert response.status_code == 200, response.json
    return dict(response.json)


def trigger(consequence_id: UUID, headers: dict[str, str] | None = None) -> Any:
    return client("trigger_consequence").post(
        "/", json={"consequence_id": str(consequence_id)}, headers=headers if headers is not None else service()
    )


def overdue(owner: Conn, checkpoint: UUID) -> None:
    owner.execute("update public.checkpoints set deadline = now() - interval '1 minute' where id = %s", [checkpoint])


def overdue_goal(owner: Conn, goal: UUID) -> None:
    owner.execute("update public.checkpoints set deadline = now() - interval '1 minute' where goal_id = %s", [goal])
    owner.execute("update public.goals set final_deadline = now() - interval '1 minute' where id = %s", [goal])


def on_time_submission(owner: Conn, user: UUID, checkpoint: UUID, status: str) -> UUID:
    """Proof made well before the (soon overdue) deadline, in the given grading state."""
    submission = f.submission(owner, user, checkpoint)
    owner.execute(
        "update public.submissions set status = %s, submitted_at = now() - interval '1 hour',"
        " captured_at = now() - interval '1 hour' where id = %s",
        [status, submission],
    )
    return submission


def consequences(owner: Conn) -> list[dict[str, Any]]:
    return owner.execute("select * from public.consequences order by consequence_type").fetchall()


def connect_x(owner: Conn, user: UUID) -> None:
    from shared import db
    from shared.account import x_oauth

    with db.as_service() as conn:
        x_oauth._store(conn, user, {"access_token": "x-access", "refresh_token": "x-refresh", "expires_in": 7200})


def with_kompromat(owner: Conn, user: UUID, severity: str, content: bytes = PNG) -> UUID:
    from shared.account import sealing

    row = owner.execute(
        "insert into public.kompromat (user_id, original_filename, file_type, severity, file_path)"
        " values (%s, 'p.png', 'image/png', %s, 'pending') returning id",
        [user, severity],
    ).fetchone()
    assert row is not None
    sealed = sealing.seal(content, purpose="kompromat", row_id=row["id"], user_id=user)
    owner.execute(
        "update public.kompromat set encrypted_content = %s, key_id = %s, file_path = null where id = %s",
        [sealed.blob, sealed.key_id, row["id"]],
    )
    return UUID(str(row["id"]))


# -----------------------------------------------------------------------------
# Outcomes
# -----------------------------------------------------------------------------
def test_missed_checkpoint_hit_pays_the_share_once(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, stake="90.00", checkpoints=2)
    first = f.checkpoint_ids(owner, goal)[0]
    overdue(owner, first)
    result = check()
    assert result["checkpoints_missed"] == 1 and result["consequences_created"] == 1
    assert result["dispatched"] == 1 and result["failures"] == 0
    roll = owner.execute(
        "select draw, odds_numerator, odds_denominator, outcome::text, consequence_id"
        " from public.roulette_rolls where checkpoint_id = %s",
        [first],
    ).fetchone()
    assert (
        roll is not None and roll["outcome"] == "hit" and (roll["odds_numerator"], roll["odds_denominator"]) == (1, 1)
    )
    [row] = consequences(owner)
    assert row["id"] == roll["consequence_id"] and row["roulette_roll"]["draw"] == roll["draw"]
    assert (str(row["consequence_type"]), str(row["monetary_amount"])) == ("monetary", "30.00")
    assert row["execution_status"] == "completed" and row["provider_reference"].startswith("tr_")
    [transfer] = providers.stripe.created("/v1/transfers")
    assert transfer.headers["Idempotency-Key"] == f"consequence-{row['id']}"
    assert transfer.form["amount"] == "3000" and transfer.form["destination"] == "acct_givedirectly"
    assert transfer.form["transfer_group"] == f"goal_{goal}"
    assert transfer.form["metadata[consequence_id]"] == str(row["id"])
    cell = owner.execute(
        "select reserved_cents, forfeited_cents from public.holding_cells where user_id = %s", [user]
    ).fetchone()
    assert cell == {"reserved_cents": 6000, "forfeited_cents": 3000}
    notice = providers.sendgrid.text(providers.sendgrid.mails[-1])
    assert "$30.00 of your stake went to GiveDirectly" in notice
    assert check()["dispatched"] == 0
    assert len(providers.stripe.created("/v1/transfers")) == 1


def test_missed_checkpoint_spared_tells_the_user(
    providers: Providers, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROULETTE_ODDS_NUMERATOR", "0")
    user = f.user(owner)
    first = f.checkpoint_ids(owner, f.goal(owner, user))[0]
    overdue(owner, first)
    result = check()
    assert (result["checkpoints_missed"], result["spared"], result["consequences_created"]) == (1, 1, 0)
    assert consequences(owner) == []
    assert owner.execute("select status::text from public.checkpoints where id = %s", [first]).fetchone() == {
        "status": "missed"
    }
    assert "The roulette spun, and it spared you." in providers.sendgrid.text(providers.sendgrid.mails[-1])


def test_minor_kompromat_goes_to_one_verified_target(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    target = f.contact(owner, user, roles=("consequence_target",), email="target@example.com")
    f.contact(owner, user, roles=("consequence_target",), verified=False, email="unverified@example.com")
    minor = with_kompromat(owner, user, "minor")
    goal = f.goal(owner, user, stake="0.00", minor=minor)
    overdue(owner, f.checkpoint_ids(owner, goal)[0])
    result = check()
    assert result["consequences_created"] == 1
    [row] = consequences(owner)
    assert str(row["consequence_type"]) == "humiliation_email" and row["target_contact_id"] == target
    humiliations = [m for m in providers.sendgrid.mails if "attachments" in m.json]
    assert [providers.sendgrid.to(m) for m in humiliations] == [["target@example.com"]]
    attachment = humiliations[0].json["attachments"][0]
    assert base64.b64decode(attachment["content"]) == PNG and attachment["type"] == "image/png"
    notice = providers.sendgrid.mails[-1]
    assert providers.sendgrid.to(notice) != ["target@example.com"]
    text = providers.sendgrid.text(notice)
    assert "A consequence was carried out. We will not say more." in text
    assert "target@example.com" not in json.dumps(notice.json) and "attachments" not in notice.json
    audit = owner.execute(
        "select count(*) as n from public.audit_log where entity = 'kompromat' and action = 'decrypted'"
    ).fetchone()
    assert audit == {"n": 1}


def test_missed_final_deadline_fires_everything(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    for email in ("a@example.com", "b@example.com"):
        f.contact(owner, user, roles=("consequence_target",), email=email)
    declined = f.contact(owner, user, roles=("consequence_target",), email="declined@example.com")
    owner.execute("update public.contacts set declined_at = now() where id = %s", [declined])
    major = with_kompromat(owner, user, "major")
    goal = f.goal(owner, user, stake="90.00", checkpoints=2, major=major)
    connect_x(owner, user)
    overdue_goal(owner, goal)
    result = check()
    assert result["goals_failed"] == 1 and result["checkpoints_missed"] == 2
    assert owner.execute("select status::text from public.goals where id = %s", [goal]).fetchone() == {
        "status": "failed"
    }
    rows = {str(r["consequence_type"]): r for r in consequences(owner)}
    final = rows["humiliation_email"]["checkpoint_id"]
    assert {str(r["consequence_type"]) for r in consequences(owner) if r["checkpoint_id"] == final} == {
        "monetary",
        "humiliation_email",
        "humiliation_x",
    }
    assert all(r["execution_status"] == "completed" for r in consequences(owner))
    transfers = providers.stripe.created("/v1/transfers")
    assert sum(int(t.form["amount"]) for t in transfers) == 9000  # the shares plus the rest: the whole stake
    mailed = sorted(providers.sendgrid.to(m)[0] for m in providers.sendgrid.mails if "attachments" in m.json)
    assert mailed == ["a@example.com", "b@example.com"]
    [upload] = providers.x.uploads
    assert upload.files["media"] == PNG and upload.headers["Authorization"] == "Bearer x-access"
    [tweet] = providers.x.tweets
    assert tweet.json["media"]["media_ids"] == ["m1"]
    assert rows["humiliation_x"]["provider_reference"] == "x:1001"
    cell = owner.execute(
        "select reserved_cents, forfeited_cents from public.holding_cells where user_id = %s", [user]
    ).fetchone()
    assert cell == {"reserved_cents": 0, "forfeited_cents": 9000}
    check()
    assert len(providers.x.tweets) == 1 and len(providers.stripe.created("/v1/transfers")) == len(transfers)


def test_checkpoint_in_grading_is_not_missed_until_it_fails(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    first = f.checkpoint_ids(owner, f.goal(owner, user))[0]
    submission = on_time_submission(owner, user, first, "grading")
    overdue(owner, first)
    assert check()["checkpoints_missed"] == 0
    owner.execute("update public.submissions set status = 'awaiting_witness' where id = %s", [submission])
    assert check()["checkpoints_missed"] == 0
    owner.execute("select app.record_grade(%s, 'failed')", [submission])
    assert check()["checkpoints_missed"] == 1


def test_an_on_time_submission_protects_until_its_final_verdict_however_long(providers: Providers, owner: Conn) -> None:
    """Issue 14: review grace is gone. Unfinished review 30 days after the deadline still protects;
    only a final fail lets the deadline count."""
    user = f.user(owner)
    first, second = f.checkpoint_ids(owner, f.goal(owner, user))[:2]
    on_time_submission(owner, user, first, "passed")
    waiting = on_time_submission(owner, user, second, "needs_review")
    owner.execute(
        "update public.submissions set submitted_at = now() - interval '31 days',"
        " captured_at = now() - interval '31 days'"
    )
    owner.execute(
        "update public.checkpoints set deadline = now() - interval '30 days' where id = any(%s)", [[first, second]]
    )
    assert check()["checkpoints_missed"] == 0
    owner.execute("select app.record_grade(%s, 'failed')", [waiting])
    result = check()
    assert result["checkpoints_missed"] == 1
    missed = owner.execute("select id from public.checkpoints where status = 'missed'").fetchall()
    assert missed == [{"id": second}]


# -----------------------------------------------------------------------------
# Exactly once
# -----------------------------------------------------------------------------
def test_second_trigger_gets_the_recorded_result(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user)
    overdue(owner, f.checkpoint_ids(owner, goal)[0])
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")
    [row] = consequences(owner)
    first = trigger(row["id"])
    assert first.status_code == 200 and first.json["outcome"] == "executed"
    again = trigger(row["id"])
    assert again.status_code == 200 and again.json["outcome"] == "already_done"
    assert again.json["provider_reference"] == first.json["provider_reference"]
    assert len(providers.stripe.created("/v1/transfers")) == 1


def test_consequence_held_by_a_live_executor_is_409(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    overdue(owner, f.checkpoint_ids(owner, f.goal(owner, user))[0])
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")
    [row] = consequences(owner)
    owner.execute("select * from app.claim_consequence(%s, 'someone-else', 300)", [row["id"]])
    response = trigger(row["id"])
    assert response.status_code == 409 and response.json["error"]["code"] == "in_progress"
    assert providers.stripe.created("/v1/transfers") == []
    owner.execute("update public.consequences set lease_expires_at = now() - interval '1 second'")
    assert trigger(row["id"]).json["outcome"] == "executed"  # an expired lease is claimable again
    assert len(providers.stripe.created("/v1/transfers")) == 1


def test_twenty_concurrent_checks_over_one_backlog(providers: Providers, owner: Conn) -> None:
    users = []
    for n in range(12):
        user = f.user(owner, f"u{n}")
        f.contact(owner, user, roles=("consequence_target",), email=f"target{n}@example.com")
        minor = with_kompromat(owner, user, "minor")
        goal = f.goal(owner, user, stake="30.00", checkpoints=2, minor=minor)
        for checkpoint in f.checkpoint_ids(owner, goal)[:2]:
            overdue(owner, checkpoint)
        users.append(user)
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: check(), range(20)))
    assert sum(r["checkpoints_missed"] for r in results) == 24
    rolls = owner.execute("select count(*) as n, count(distinct checkpoint_id) as d from public.roulette_rolls")
    assert rolls.fetchone() == {"n": 24, "d": 24}
    rows = consequences(owner)
    assert len(rows) == 24 and all(r["execution_status"] == "completed" for r in rows)
    monetary = [r for r in rows if str(r["consequence_type"]) == "monetary"]
    assert len(providers.stripe.created("/v1/transfers")) == len(monetary)
    keys = [t.headers["Idempotency-Key"] for t in providers.stripe.created("/v1/transfers")]
    assert len(set(keys)) == len(keys)
    emails = [m for m in providers.sendgrid.mails if "attachments" in m.json]
    assert len(emails) == 24 - len(monetary)
    per_recipient = [providers.sendgrid.to(m)[0] + str(m.json["custom_args"]["consequence_id"]) for m in emails]
    assert len(set(per_recipient)) == len(per_recipient)


def _execute_in_subprocess(consequence_id: UUID, repo_root: Any) -> subprocess.Popen[bytes]:
    code = f"from uuid import UUID\nfrom shared.commitments import engine\nengine.execute(UUID('{consequence_id}'))\n"
    return subprocess.Popen([sys.executable, "-c", code], cwd=repo_root, env=dict(os.environ))


def test_killed_between_transfer_and_database_update_never_pays_twice(
    providers: Providers, owner: Conn, repo_root: Any
) -> None:
    user = f.user(owner)
    overdue(owner, f.checkpoint_ids(owner, f.goal(owner, user))[0])
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")
    [row] = consequences(owner)
    proc = _execute_in_subprocess(row["id"], repo_root)
    providers.stripe.kill_on["/v1/transfers"] = proc.pid
    proc.wait(timeout=60)
    assert proc.returncode == -9
    assert len(providers.stripe.created("/v1/transfers")) == 1
    stuck = owner.execute("select execution_status::text, provider_reference from public.consequences").fetchone()
    assert stuck == {"execution_status": "executing", "provider_reference": None}
    # Nothing was booked yet: the forfeit commits with the completion, in one transaction.
    assert owner.execute("select count(*) as n from public.ledger_entries where entry_type = 'forfeit'").fetchone() == {
        "n": 0
    }
    owner.execute("update public.consequences set lease_expires_at = now() - interval '1 second'")
    assert check()["dispatched"] == 1
    done = owner.execute("select execution_status::text, provider_reference from public.consequences").fetchone()
    assert done is not None and done["execution_status"] == "completed"
    assert len(providers.stripe.created("/v1/transfers")) == 1
    assert done["provider_reference"] == providers.stripe.objects["transfer"][0]["id"]
    forfeits = owner.execute(
        "select forfeited_delta, stripe_object_id from public.ledger_entries where entry_type = 'forfeit'"
    ).fetchall()
    share = row["monetary_amount"] * 100
    assert forfeits == [{"forfeited_delta": share, "stripe_object_id": done["provider_reference"]}]


def test_killed_after_sending_an_email_never_sends_it_twice(providers: Providers, owner: Conn, repo_root: Any) -> None:
    user = f.user(owner)
    f.contact(owner, user, roles=("consequence_target",), email="only@example.com")
    goal = f.goal(owner, user, stake="0.00", minor=with_kompromat(owner, user, "minor"))
    overdue(owner, f.checkpoint_ids(owner, goal)[0])
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")
    [row] = consequences(owner)
    proc = _execute_in_subprocess(row["id"], repo_root)
    providers.sendgrid.kill_on["/v3/mail/send"] = proc.pid
    proc.wait(timeout=60)
    assert proc.returncode == -9 and len(providers.sendgrid.mails) == 1
    owner.execute("update public.consequences set lease_expires_at = now() - interval '1 second'")
    check()
    humiliations = [m for m in providers.sendgrid.mails if "attachments" in m.json]
    assert len(humiliations) == 1
    delivery = owner.execute("select status::text from public.consequence_deliveries").fetchone()
    assert delivery == {"status": "uncertain"}
    assert owner.execute("select execution_status::text from public.consequences").fetchone() == {
        "execution_status": "completed"
    }


def test_providers_failing_thirty_percent_converge_without_duplicates(
    providers: Providers, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSEQUENCE_BACKOFF_BASE_SECONDS", "0")
    monkeypatch.setenv("CONSEQUENCE_MAX_ATTEMPTS", "50")
    for fake in (providers.stripe, providers.sendgrid):
        fake.fault_rate = 0.3
        fake.timeout_delay = 0.8
    for n in range(8):
        user = f.user(owner, f"f{n}")
        f.contact(owner, user, roles=("consequence_target",), email=f"t{n}@example.com")
        goal = f.goal(owner, user, stake="20.00", checkpoints=1, major=with_kompromat(owner, user, "major"))
        overdue_goal(owner, goal)
    for _ in range(40):
        check()
        pending = owner.execute(
            "select count(*) as n from public.consequences where execution_status <> 'completed'"
        ).fetchone()
        if pending == {"n": 0}:
            break
        owner.execute("update public.consequences set lease_expires_at = now() where execution_status = 'executing'")
    rows = consequences(owner)
    assert rows and all(r["execution_status"] == "completed" for r in rows), [
        (r["execution_status"], r["last_error"]) for r in rows if r["execution_status"] != "completed"
    ]
    monetary = [r for r in rows if str(r["consequence_type"]) == "monetary"]
    assert len(providers.stripe.objects["transfer"]) == len(monetary)
    groups = [t["metadata"]["consequence_id"] for t in providers.stripe.objects["transfer"]]
    assert len(set(groups)) == len(groups)
    humiliations = [m.json["custom_args"]["delivery_id"] for m in providers.sendgrid.mails if "attachments" in m.json]
    assert len(set(humiliations)) == len(humiliations)


def test_roulette_odds_hold_over_many_rolls(owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, stake="0.00", checkpoints=0, activate=False)
    rolls = 3000
    owner.execute(
        "insert into public.checkpoints (goal_id, title, deadline, order_position)"
        " select %s, 'cp ' || n, now() + interval '1 day', n from generate_series(1, %s) n",
        [goal, rolls],
    )
    owner.execute("select app.activate_goal(%s, %s)", [goal, rolls])  # past MAX_CHECKPOINTS_PER_GOAL, on purpose
    owner.execute(
        "update public.checkpoints set deadline = now() - interval '1 minute' where goal_id = %s and not is_final",
        [goal],
    )
    owner.execute("select app.detect_missed_deadlines(%s, 1, 3)", [rolls])
    counts = owner.execute(
        "select count(*) filter (where outcome = 'hit') as hits, count(*) as n,"
        " count(distinct draw) as distinct_draws from public.roulette_rolls"
    ).fetchone()
    assert counts is not None and counts["n"] == rolls
    # 1 in 3, within 5 standard deviations (sd = sqrt(n p (1 - p)) = 25.8 for n = 3000).
    assert abs(counts["hits"] - rolls / 3) < 130, counts
    assert counts["distinct_draws"] > rolls * 0.99


# -----------------------------------------------------------------------------
# Who may call
# -----------------------------------------------------------------------------
def test_user_tokens_and_body_flags_are_refused(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    overdue(owner, f.checkpoint_ids(owner, f.goal(owner, user))[0])
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")
    [row] = consequences(owner)
    user_token = bearer(mint_token(str(user)))
    assert client("check_deadlines").post("/", json={}, headers=user_token).status_code == 403
    assert trigger(row["id"], headers=user_token).status_code == 403
    flagged = client("trigger_consequence").post("/", json={"consequence_id": str(row["id"]), "internal_call": True})
    assert flagged.status_code == 401
    flagged = client("check_deadlines").post("/", json={"internal_call": True})
    assert flagged.status_code == 401
    assert consequences(owner)[0]["execution_status"] == row["execution_status"] == "held"  # untouched
    assert providers.stripe.created("/v1/transfers") == []


def test_trigger_consequence_bad_bodies_are_400(providers: Providers) -> None:
    for body in ({}, {"consequence_id": "nope"}, {"consequence_id": None}):
        response = client("trigger_consequence").post("/", json=body, headers=service())
        assert response.status_code == 400 and response.json["error"]["details"][0]["field"] == "consequence_id"
    missing = trigger(UUID(int=5))
    assert missing.status_code == 404


def test_insufficient_held_funds_fail_once_and_tell_the_user(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, stake="90.00")
    overdue(owner, f.checkpoint_ids(owner, goal)[0])
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")
    # The reserve is gone, as an outside refund would leave it (release_stake keeps what is owed).
    owner.execute(
        "select app.ledger_post(%s, 'stake_released', 9000, 9000, -9000, 0, 'drain:' || %s, %s)", [user, goal, goal]
    )
    [row] = consequences(owner)
    result = trigger(row["id"]).json
    assert result["execution_status"] == "failed" and result["last_error"].startswith("insufficient_funds")
    assert providers.stripe.created("/v1/transfers") == []
    notifications.send_due()  # the scheduler's pass sends what finishing queued
    assert "did not hold enough" in providers.sendgrid.text(providers.sendgrid.mails[-1])
    assert check()["dispatched"] == 0


def test_revoked_x_token_is_a_permanent_failure(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, stake="0.00", major=with_kompromat(owner, user, "major"))
    connect_x(owner, user)
    owner.execute("update public.x_connections set expires_at = now() - interval '1 hour'")
    providers.x.token_status = 400
    overdue_goal(owner, goal)
    check()
    rows = consequences(owner)
    x = next(r for r in rows if r["consequence_type"] == "humiliation_x")
    assert x["execution_status"] == "failed" and x["last_error"].startswith("x_revoked:")
    assert providers.x.tweets == []
    # The fallback to email was created too; with no verified target it has no one to reach.
    assert {r["consequence_type"] for r in rows} == {"humiliation_x", "humiliation_email"}
    check()
    told = [m for m in providers.sendgrid.mails if "by email instead" in providers.sendgrid.text(m)]
    assert len(told) == 1


def test_x_revoked_by_x_falls_back_to_the_email_targets_once(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    target = f.contact(owner, user, roles=("consequence_target",), email="target@example.org")
    goal = f.goal(owner, user, stake="0.00", major=with_kompromat(owner, user, "major"))
    connect_x(owner, user)
    owner.execute("update public.x_connections set expires_at = now() - interval '1 hour'")
    providers.x.token_status = 400
    overdue_goal(owner, goal)
    for _ in range(3):
        check()
    rows = {r["consequence_type"]: r for r in consequences(owner)}
    assert rows["humiliation_x"]["last_error"].startswith("x_revoked:")
    assert rows["humiliation_email"]["execution_status"] == "completed"
    to_target = [
        m for m in providers.sendgrid.mails if m.json["personalizations"][0]["to"][0]["email"] == "target@example.org"
    ]
    assert len(to_target) == 1 and target  # the kompromat reached the target exactly once
    assert providers.x.tweets == []


def test_engine_retries_transient_failures_with_backoff(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    overdue(owner, f.checkpoint_ids(owner, f.goal(owner, user))[0])
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")
    [row] = consequences(owner)
    providers.stripe.fail_next("/v1/transfers", 500, 500, 500)
    first = engine.execute(row["id"])
    assert first.outcome == "retry_scheduled" and first.execution_status == "pending"
    waiting = owner.execute(
        "select next_attempt_at > now() + interval '30 seconds' as later from public.consequences"
    ).fetchone()
    assert waiting == {"later": True}
    assert check()["dispatched"] == 0  # not due yet
    owner.execute("update public.consequences set next_attempt_at = now()")
    assert check()["dispatched"] == 1
    assert len(providers.stripe.created("/v1/transfers")) == 1


def test_dispatch_posts_to_trigger_consequence_and_honours_retry_after(
    providers: Providers, owner: Conn, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from werkzeug import Request, Response

    monkeypatch.setenv("TRIGGER_CONSEQUENCE_URL", httpserver.url_for("/trigger_consequence"))
    monkeypatch.setenv("DISPATCH_CONCURRENCY", "1")
    seen: list[str] = []
    busy = {"left": 1}

    def forward(request: Request) -> Response:
        seen.append(request.headers.get("Authorization", ""))
        if busy["left"]:
            busy["left"] -= 1
            return Response('{"error": {}}', status=503, headers={"Retry-After": "120"})
        answer = trigger(
            UUID(request.get_json()["consequence_id"]), headers={"Authorization": request.headers["Authorization"]}
        )
        return Response(answer.get_data(), status=answer.status_code, content_type="application/json")

    httpserver.expect_request("/trigger_consequence", method="POST").respond_with_handler(forward)
    for n in range(3):
        user = f.user(owner, f"d{n}")
        overdue(owner, f.checkpoint_ids(owner, f.goal(owner, user))[0])
    first = check()
    assert (first["dispatched"], first["deferred"]) == (0, 3)  # the 503 asked us to wait 120 s
    assert len(seen) == 1 and seen[0].startswith("Bearer ")
    second = check()
    assert second["dispatched"] == 3
    assert len(providers.stripe.created("/v1/transfers")) == 3


def test_failed_detection_stage_does_not_stop_dispatch_or_notices(
    providers: Providers, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, stake="30.00")
    overdue(owner, f.checkpoint_ids(owner, goal)[0])
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")  # one consequence already due
    # A bad setting makes detection refuse every pass: the other stages must still run.
    monkeypatch.setenv("ROULETTE_ODDS_NUMERATOR", "5")
    monkeypatch.setenv("ROULETTE_ODDS_DENOMINATOR", "3")
    get_settings.cache_clear()
    result = check()
    assert result["stage_failures"] == ["detection"]
    assert result["dispatched"] == 1
    assert len(providers.stripe.created("/v1/transfers")) == 1
    assert "of your stake went to" in providers.sendgrid.text(providers.sendgrid.mails[-1])


def test_html_in_name_and_title_is_escaped_in_the_humiliation_email(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    f.contact(owner, user, roles=("consequence_target",), email="target@example.com")
    goal = f.goal(owner, user, stake="0.00", minor=with_kompromat(owner, user, "minor"))
    owner.execute(
        "update public.users set display_name = %s where id = %s", ['<a href="https://phish.example">Bank</a>', user]
    )
    owner.execute("update public.goals set title = %s where id = %s", ["<style>p{display:none}</style>", goal])
    overdue(owner, f.checkpoint_ids(owner, goal)[0])
    check()
    [mail] = [m for m in providers.sendgrid.mails if "attachments" in m.json]
    html_part = next(c["value"] for c in mail.json["content"] if c["type"] == "text/html")
    assert "<a href" not in html_part and "<style>" not in html_part
    assert "&lt;a href=&#34;https://phish.example&#34;&gt;" in html_part  # shown as text, not a link
