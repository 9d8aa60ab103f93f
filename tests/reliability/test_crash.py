"""Crashes and outages. CRASH_TRIALS sets the trials (20 in `make test`, 500 in `make soak`).

Each trial SIGKILLs a process running check_deadlines or trigger_consequence
at a random moment, then lets recovery run (leases expire, the scheduler
passes again). Afterwards every consequence is completed or failed with a
reason, and the stand-ins saw no second transfer, email or post."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from shared import db
from shared.auth import mint_token
from shared.commitments import deadlines
from shared.dev import localdb
from tests import factories as f
from tests.fakes import FakeSendGrid, FakeStripe, FakeX
from tests.http_helpers import bearer, client
from tests.test_engine import connect_x, overdue_goal, with_kompromat

TRIALS = int(os.environ.get("CRASH_TRIALS", "20"))
Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def fakes(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, database: str) -> Iterator[dict[str, Any]]:
    base = httpserver.url_for("/").rstrip("/")
    for name, value in {
        "STRIPE_API_BASE": base,
        "STRIPE_SECRET_KEY": "sk_test_crash",
        "SENDGRID_API_HOST": base,
        "SENDGRID_API_KEY": "SG.crash",
        "X_API_BASE": base,
        "X_CLIENT_ID": "cid",
        "X_REDIRECT_URI": "https://a/cb",
        "CHARITY_ACCOUNTS": json.dumps({"givedirectly": "acct_g"}),
        "ROULETTE_ODDS_NUMERATOR": "1",
        "ROULETTE_ODDS_DENOMINATOR": "1",
        "NOTIFICATION_RETRY_BUDGET_SECONDS": "0",
        "CONSEQUENCE_BACKOFF_BASE_SECONDS": "0",
        "CONSEQUENCE_MAX_ATTEMPTS": "50",
        "DB_POOL_TIMEOUT_SECONDS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    stripe = FakeStripe(server=httpserver).install()
    sendgrid = FakeSendGrid(server=httpserver).install()
    x = FakeX(server=httpserver).install()
    yield {"stripe": stripe, "sendgrid": sendgrid, "x": x}


def _backlog(owner: Conn, goals: int = 1) -> None:
    for n in range(goals):
        user = f.user(owner, f"crash{n}")
        f.contact(owner, user, roles=("consequence_target",), email=f"t{n}a@example.com")
        f.contact(owner, user, roles=("consequence_target",), email=f"t{n}b@example.com")
        goal = f.goal(
            owner,
            user,
            stake="40.00",
            checkpoints=1,
            minor=with_kompromat(owner, user, "minor"),
            major=with_kompromat(owner, user, "major"),
        )
        owner.execute("update public.goals set title = %s where id = %s", [f"Goal {goal}", goal])
        connect_x(owner, user)
        overdue_goal(owner, goal)


def _recover(owner: Conn) -> None:
    """What time and the scheduler do after a crash: leases expire, passes run until all is done."""
    for _ in range(30):
        owner.execute(
            "update public.consequences set lease_expires_at = now() - interval '1 second'"
            " where execution_status = 'executing'"
        )
        owner.execute("update public.consequences set next_attempt_at = now() where execution_status = 'pending'")
        try:
            deadlines.run()
        except Exception as error:
            # Just after a restart the pool is still reconnecting: the next pass (like the next
            # scheduler tick in production) goes through.
            assert db.is_unavailable(error), error
            time.sleep(0.5)
        left = owner.execute(
            "select count(*) as n from public.consequences where execution_status in ('pending', 'executing')"
        ).fetchone()
        if left == {"n": 0}:
            return
    pytest.fail("consequences never converged")


def _assert_once(owner: Conn, fakes: dict[str, Any]) -> None:
    rows = owner.execute("select id, execution_status::text as s, last_error from public.consequences").fetchall()
    assert rows
    for row in rows:
        assert row["s"] in ("completed", "failed"), row
        if row["s"] == "failed":
            assert row["last_error"], row
    transfers = Counter(t["metadata"]["consequence_id"] for t in fakes["stripe"].objects.get("transfer", []))
    assert all(n == 1 for n in transfers.values()), transfers
    emails = Counter(
        m.json["custom_args"]["delivery_id"]
        for m in fakes["sendgrid"].mails
        if "delivery_id" in m.json.get("custom_args", {})
    )
    assert all(n == 1 for n in emails.values()), emails
    posts = Counter(t.json["text"] for t in fakes["x"].tweets)
    assert all(n == 1 for n in posts.values()), posts
    forfeits = owner.execute(
        "select consequence_id, count(*) as n from public.ledger_entries"
        " where entry_type = 'forfeit' group by consequence_id having count(*) > 1"
    ).fetchall()
    assert forfeits == []
    # Per goal, what the Stripe stand-in moved is at most the stake and equals the ledger's forfeits.
    moved: Counter[str] = Counter()
    for transfer in fakes["stripe"].objects.get("transfer", []):
        moved[transfer["metadata"]["goal_id"]] += int(transfer["amount"])
    per_goal = owner.execute(
        "select g.id::text as goal, (g.monetary_stake * 100)::bigint as stake,"
        " coalesce(sum(le.forfeited_delta), 0)::bigint as forfeited from public.goals g"
        " left join public.ledger_entries le on le.goal_id = g.id and le.entry_type = 'forfeit' group by g.id"
    ).fetchall()
    for row in per_goal:
        assert moved[row["goal"]] == row["forfeited"] <= row["stake"], row


CHILD = """
import sys
from uuid import UUID
from shared.commitments import deadlines, engine
if sys.argv[1] == "check":
    deadlines.run()
else:
    for consequence in sys.argv[2:]:
        engine.execute(UUID(consequence))
"""


def test_sigkill_at_random_points_never_executes_twice(fakes: dict[str, Any], owner: Conn, repo_root: Path) -> None:
    rng = random.Random(20261122)
    for fake in fakes.values():
        fake.delay_each = 0.05  # provider latency spreads the kill over every phase
    for _trial in range(TRIALS):
        _backlog(owner)  # trials accumulate: every check below covers all of them
        owner.execute("select app.detect_missed_deadlines(100, 1, 1)")
        ids = [str(r["id"]) for r in owner.execute("select id from public.consequences").fetchall()]
        mode = rng.choice(["check", "trigger"])
        args = ["check"] if mode == "check" else ["trigger", *rng.sample(ids, len(ids))]
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            cwd=repo_root,
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 2.5))  # start-up takes ~0.5 s; the kill lands anywhere after it
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        _recover(owner)
        _assert_once(owner, fakes)
    assert TRIALS > 0


@pytest.fixture
def own_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A PostgreSQL of this test's own, migrated: the test stops it mid-run, and the server the
    other tests (and other workers) share must keep running."""
    from shared import config
    from shared.dev import migrate
    from shared.dev.cli import buckets_sql

    data_dir = tmp_path / "pgdata"
    url = localdb.start(data_dir, database="threativator_test", fast_unsafe=True)
    migrate.migrate(url, local=True)
    with psycopg.connect(url) as conn:
        conn.execute(buckets_sql())
    db.close_pool()
    monkeypatch.setenv("DATABASE_URL", url)
    config.get_settings.cache_clear()
    yield data_dir, url
    db.close_pool()
    localdb.stop(data_dir)


def test_database_restart_mid_dispatch_loses_and_duplicates_nothing(
    fakes: dict[str, Any], own_server: tuple[Path, str]
) -> None:
    pg_data_dir, pg_url = own_server
    owner = psycopg.connect(pg_url, autocommit=True, row_factory=dict_row_factory())
    _backlog(owner, goals=3)
    owner.execute("select app.detect_missed_deadlines(100, 1, 1)")
    for fake in (fakes["stripe"], fakes["sendgrid"]):
        fake.delay_each = 0.15
    owner.close()
    outage = threading.Event()

    def restart() -> None:
        time.sleep(0.4)
        localdb.stop(pg_data_dir)
        outage.set()

    stopper = threading.Thread(target=restart)
    stopper.start()
    try:
        deadlines.run()
    except Exception as error:  # the pass itself may lose its connection mid-way
        assert (
            "connection" in str(error).lower()
            or "terminat" in str(error).lower()
            or isinstance(error, psycopg.OperationalError)
        )
    stopper.join()
    assert outage.is_set()
    during = client("trigger_consequence").post(
        "/", json={"consequence_id": str(UUID(int=1))}, headers=bearer(mint_token(None, role="service_role"))
    )
    assert during.status_code == 503 and during.headers["Retry-After"]
    checked = client("check_deadlines").post("/", json={}, headers=bearer(mint_token(None, role="service_role")))
    assert checked.status_code == 503
    localdb.start(pg_data_dir, database="threativator_test")
    with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row_factory()) as conn:
        _recover(conn)
        _assert_once(conn, fakes)


def dict_row_factory() -> Any:
    from psycopg.rows import dict_row

    return dict_row


KILLED_AFTER_FINISH = """
import os, signal, sys
from uuid import UUID
from shared.commitments.engine import protocol
finish = protocol._finish
def finish_then_die(*args, **kwargs):
    finished = finish(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # after the commit, before anything else
    return finished
protocol._finish = finish_then_die
protocol.execute(UUID(sys.argv[1]))
"""


def test_executor_killed_after_finishing_still_sends_the_notice_once(
    fakes: dict[str, Any], owner: Conn, repo_root: Path
) -> None:
    user = f.user(owner, "killed")
    goal = f.goal(owner, user, stake="30.00", checkpoints=1)
    overdue_goal(owner, goal)
    owner.execute("select app.detect_missed_deadlines(100, 1, 1)")
    row = owner.execute("select id from public.consequences where consequence_type = 'monetary' limit 1").fetchone()
    assert row is not None
    child = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_FINISH, str(row["id"])],
        cwd=repo_root,
        env=dict(os.environ),
        capture_output=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL
    state = owner.execute("select execution_status::text as s from public.consequences where id = %s", [row["id"]])
    assert state.fetchone() == {"s": "completed"}
    notice = owner.execute(
        "select id, status::text as status from public.notifications where subject_id = %s", [row["id"]]
    ).fetchone()
    assert notice is not None and notice["status"] == "queued"  # born with the outcome, not yet sent
    for _ in range(3):  # repeated passes
        deadlines.run()
    sent = [m for m in fakes["sendgrid"].mails if m.json["custom_args"].get("notification_id") == str(notice["id"])]
    assert len(sent) == 1 and "of your stake went to" in fakes["sendgrid"].text(sent[0])
    transfers = [t for t in fakes["stripe"].objects["transfer"] if t["metadata"]["consequence_id"] == str(row["id"])]
    assert len(transfers) == 1
