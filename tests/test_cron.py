"""The pg_cron job and the Database Webhooks, run as Supabase runs them: the migrations create the job
through pg_cron's own cron.schedule (a local stand-in installed as the extension, sql/local/share/extension),
the job's stored command is run as pg_cron runs it (as the job's user), and what pg_net queues is the
POST that would leave the database. Vault is Supabase's own shape (sql/local/003_vault.sql). Each test
works inside a transaction it rolls back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from shared.dev.cli import WEBHOOKS_SQL
from tests import factories as f

Conn = psycopg.Connection[Any]


@pytest.fixture
def rolled_back(owner: Conn) -> Iterator[Conn]:
    with owner.transaction(force_rollback=True):
        yield owner


def vault(conn: Conn, **secrets: str) -> None:
    for name, value in secrets.items():
        conn.execute("select vault.create_secret(%s, %s)", [value, name])


def queued(conn: Conn) -> list[dict[str, Any]]:
    rows = conn.execute(
        "select id, method::text as method, url, headers, convert_from(body, 'UTF8') as body, timeout_milliseconds"
        " from net.http_request_queue order by id"
    ).fetchall()
    return [{**r, "body": json.loads(r["body"])} for r in rows]


def run_job(conn: Conn, name: str) -> None:
    """What pg_cron's worker does for a job: its command, as its user, in its database."""
    job = conn.execute(
        "select command, username, database from cron.job where jobname = %s and active", [name]
    ).fetchone()
    assert job is not None, f"no active pg_cron job named {name}"
    assert job["database"] == conn.execute("select current_database() as d").fetchone()["d"]  # type: ignore[index]
    conn.execute(sql.SQL("set local role {}").format(sql.Identifier(job["username"])))
    conn.execute(job["command"])
    conn.execute("reset role")


def test_migrations_schedule_check_deadlines_every_five_minutes_with_pg_cron(rolled_back: Conn) -> None:
    jobs = rolled_back.execute("select jobname, schedule, command from cron.job").fetchall()
    assert jobs == [
        {"jobname": "check-deadlines", "schedule": "*/5 * * * *", "command": "select app.check_missed_deadlines()"}
    ]
    # cron.schedule with the same name replaces the job (a repeated migration adds none).
    rolled_back.execute("select cron.schedule('check-deadlines', '*/5 * * * *', 'select app.check_missed_deadlines()')")
    assert rolled_back.execute("select count(*) as n from cron.job").fetchone() == {"n": 1}


def test_cron_job_posts_to_check_deadlines_with_the_vault_credential(rolled_back: Conn) -> None:
    vault(
        rolled_back,
        check_deadlines_url="https://fn.example/check_deadlines",
        check_deadlines_service_key="sb_secret_cron0123456789",
    )
    run_job(rolled_back, "check-deadlines")
    [post] = queued(rolled_back)
    assert post["method"] == "POST" and post["url"] == "https://fn.example/check_deadlines"
    assert post["headers"] == {
        "Content-Type": "application/json",
        "apikey": "sb_secret_cron0123456789",
        "Authorization": "Bearer sb_secret_cron0123456789",
    }
    assert post["body"] == {"source": "pg_cron"}
    # Cloud Functions answers within its own 60 s limit; pg_net gives up a little before.
    assert post["timeout_milliseconds"] == 55000


def test_cron_job_without_vault_secrets_posts_nothing_and_fails_nothing(rolled_back: Conn) -> None:
    run_job(rolled_back, "check-deadlines")
    assert queued(rolled_back) == []


def test_check_missed_deadlines_is_the_service_role_s_alone(rolled_back: Conn) -> None:
    for role in ("anon", "authenticated"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), rolled_back.transaction():
            rolled_back.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
            rolled_back.execute("select app.check_missed_deadlines()")


# -----------------------------------------------------------------------------
# Database Webhooks (`threativator webhooks`): fired by their real triggers
# -----------------------------------------------------------------------------
WEBHOOK_SECRETS = {
    "grade_submission_url": "https://fn.example/grade_submission",
    "send_notification_url": "https://fn.example/send_notification",
    "database_webhook_secret": "webhook-secret-0123456789",
}


def test_a_new_submission_fires_its_grading_webhook_once(rolled_back: Conn) -> None:
    rolled_back.execute(WEBHOOKS_SQL)
    vault(rolled_back, **WEBHOOK_SECRETS)
    alice = f.user(rolled_back, "alice")
    checkpoint = f.checkpoint_ids(rolled_back, f.goal(rolled_back, alice))[0]
    submission = f.submission(rolled_back, alice, checkpoint, url="https://example.com/proof", captured=False)
    posts = [p for p in queued(rolled_back) if p["url"].endswith("grade_submission")]
    assert len(posts) == 1
    [post] = posts
    assert post["method"] == "POST" and post["timeout_milliseconds"] == 5000
    assert post["headers"] == {"Content-Type": "application/json", "X-Webhook-Secret": "webhook-secret-0123456789"}
    # Supabase's payload shape, carrying the row's id only: the function reads the rest itself.
    assert post["body"] == {
        "type": "INSERT",
        "table": "submissions",
        "schema": "public",
        "record": {"id": str(submission)},
        "old_record": None,
    }


def test_a_queued_notification_fires_its_sending_webhook_and_a_sent_one_does_not(rolled_back: Conn) -> None:
    rolled_back.execute(WEBHOOKS_SQL)
    vault(rolled_back, **WEBHOOK_SECRETS)
    alice = f.user(rolled_back, "alice")
    before = {p["id"] for p in queued(rolled_back)}
    ids = []
    for status in ("queued", "sent"):
        row = rolled_back.execute(
            "insert into public.notifications (type, user_id, dedupe_key, status) values"
            " ('spared', %s, %s, %s::public.notification_status) returning id",
            [alice, f"webhook-{status}", status],
        ).fetchone()
        assert row is not None
        ids.append(UUID(str(row["id"])))
    posts = [p for p in queued(rolled_back) if p["id"] not in before]
    assert [p["url"] for p in posts] == ["https://fn.example/send_notification"]
    assert posts[0]["body"]["record"] == {"id": str(ids[0])} and posts[0]["body"]["table"] == "notifications"


def test_a_webhook_without_its_vault_secrets_never_blocks_the_insert(rolled_back: Conn) -> None:
    rolled_back.execute(WEBHOOKS_SQL)
    alice = f.user(rolled_back, "alice")
    checkpoint = f.checkpoint_ids(rolled_back, f.goal(rolled_back, alice))[0]
    f.submission(rolled_back, alice, checkpoint, url="https://example.com/proof", captured=False)
    assert queued(rolled_back) == []
    assert rolled_back.execute("select count(*) as n from public.submissions").fetchone() == {"n": 1}
