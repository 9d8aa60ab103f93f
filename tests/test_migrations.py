"""Migrations apply in order, are recorded with checksums, run again as a no-op,
and refuse to continue when an applied file has changed."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from shared.dev import migrate
from shared.dev.cli import main as cli_main
from shared.dev.localdb import POSTGRES_BIN


@pytest.fixture
def scratch_url(pg_admin_url: str) -> Iterator[str]:
    """A brand-new empty database on the test server."""
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(name)))
    yield pg_admin_url.replace("/postgres?", f"/{name}?")
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("drop database {} with (force)").format(psycopg.sql.Identifier(name)))


def _schema_fingerprint(url: str) -> list[tuple[str, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select n.nspname, c.relname, c.relkind::text from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname in ('public', 'app', 'private', 'auth')"
            " union all select n.nspname, p.proname, md5(p.prosrc) from pg_proc p"
            " join pg_namespace n on n.oid = p.pronamespace where n.nspname in ('app', 'private', 'auth')"
            " union all select schemaname, tablename, policyname from pg_policies"
            " order by 1, 2, 3"
        ).fetchall()


def test_migrate_applies_everything_then_nothing(scratch_url: str) -> None:
    first = migrate.migrate(scratch_url, local=True)
    local = sorted(f"local/{p.name}" for p in (migrate.SQL_DIR / "local").glob("*.sql"))
    assert first[0] == "local/001_supabase_standins.sql"
    numbered = sorted(p.name for p in migrate.SQL_DIR.glob("*.sql"))
    repeatable = sorted(f"functions/{p.name}" for p in (migrate.SQL_DIR / "functions").glob("*.sql"))
    assert first == local + numbered + repeatable
    fingerprint = _schema_fingerprint(scratch_url)
    assert migrate.migrate(scratch_url, local=True) == []
    assert _schema_fingerprint(scratch_url) == fingerprint
    assert migrate.pending(scratch_url, local=True) == []
    with psycopg.connect(scratch_url) as conn:
        rows = conn.execute("select filename, checksum from app.schema_migrations order by filename").fetchall()
    assert len(rows) == len(first) - len(repeatable)
    assert all(len(checksum) == 64 for _, checksum in rows)


def test_migrate_refuses_a_changed_applied_file(scratch_url: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrate.SQL_DIR, sql_dir)
    migrate.migrate(scratch_url, local=True, sql_dir=sql_dir)
    (sql_dir / "001_schema.sql").write_text((sql_dir / "001_schema.sql").read_text() + "\n-- edited\n")
    (sql_dir / "999_new.sql").write_text("create table app.should_not_exist (id int);")
    with pytest.raises(migrate.MigrationError, match=r"001_schema.sql has changed since it was applied"):
        migrate.migrate(scratch_url, local=True, sql_dir=sql_dir)
    with psycopg.connect(scratch_url) as conn:
        exists = conn.execute("select to_regclass('app.should_not_exist')").fetchone()
    assert exists == (None,)


def test_migrate_failed_file_leaves_nothing_half_applied(scratch_url: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrate.SQL_DIR, sql_dir)
    (sql_dir / "999_broken.sql").write_text("create table app.half (id int);\nselect broken syntax here;")
    with pytest.raises(migrate.MigrationError, match=r"999_broken\.sql failed"):
        migrate.migrate(scratch_url, local=True, sql_dir=sql_dir)
    with psycopg.connect(scratch_url) as conn:
        assert conn.execute("select to_regclass('app.half')").fetchone() == (None,)
        names = [r[0] for r in conn.execute("select filename from app.schema_migrations").fetchall()]
    assert "999_broken.sql" not in names
    assert "005_cron.sql" in names


def test_migrate_cli_reports_a_changed_file(
    scratch_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", scratch_url)
    assert cli_main(["migrate", "--local"]) == 0
    assert "applied" in capsys.readouterr().out
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        conn.execute("update app.schema_migrations set checksum = 'x' where filename = '003_rls.sql'")
    assert cli_main(["migrate", "--local"]) == 1
    assert "003_rls.sql has changed" in capsys.readouterr().err


# The numbered migrations up to this one defined functions in a chain of `create or replace`;
# sql/functions/ is now the one home of each. They stay as applied history, never edited.
LAST_MIGRATION_BEFORE_REPEATABLES = 12
_DEFINITION = re.compile(r"create\s+(?:or\s+replace\s+)?function\s+([\w.]+)\s*\(", re.IGNORECASE)
_TRIGGER = re.compile(
    r"create\s+(?:or\s+replace\s+)?(?:constraint\s+)?trigger\s+(\w+)\s.*?\bon\s+([\w.]+)", re.IGNORECASE | re.DOTALL
)


def _defined(path: Path) -> list[str]:
    text = re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))
    functions = [m.group(1).lower() for m in _DEFINITION.finditer(text)]
    triggers = [f"trigger {m.group(1)} on {m.group(2)}".lower() for m in _TRIGGER.finditer(text)]
    return functions + triggers


def _homes(sql_dir: Path) -> dict[str, list[str]]:
    homes: dict[str, list[str]] = {}
    files = sorted((sql_dir / "functions").glob("*.sql")) + [
        p for p in sorted(sql_dir.glob("*.sql")) if int(p.name.split("_")[0]) > LAST_MIGRATION_BEFORE_REPEATABLES
    ]
    for path in files:
        for name in _defined(path):
            homes.setdefault(name, []).append(path.name)
    return homes


def test_every_function_and_trigger_has_one_home() -> None:
    homes = _homes(migrate.SQL_DIR)
    assert {name: files for name, files in homes.items() if len(files) > 1} == {}
    historic = {
        name
        for path in migrate.SQL_DIR.glob("*.sql")
        if int(path.name.split("_")[0]) <= LAST_MIGRATION_BEFORE_REPEATABLES
        for name in _defined(path)
    }
    assert sorted(historic - homes.keys() - RETIRED) == [], (
        "defined only in applied history: give it a home in sql/functions/"
    )
    # A retired function's home is the repeatable file that drops it.
    dropped = {
        m.group(1).lower()
        for path in (migrate.SQL_DIR / "functions").glob("*.sql")
        for m in re.finditer(r"drop\s+function\s+if\s+exists\s+([\w.]+)\s*\(", path.read_text(encoding="utf-8"))
    }
    assert sorted(RETIRED - dropped) == []


# Functions the numbered history defines that no longer exist; a repeatable file drops each.
RETIRED = frozenset(
    {
        # Its two conditions are written into detection, which must inline them (advisor: no helper
        # without a fixed search_path; detection: no helper that cannot be inlined).
        "private.has_protecting_submission",
    }
)


def test_one_home_check_fails_on_a_second_definition(tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrate.SQL_DIR, sql_dir)
    (sql_dir / "functions" / "zz_copy.sql").write_text(
        "create or replace function app.audit(p text) returns void language sql as $$ select $$;"
    )
    assert _homes(sql_dir)["app.audit"] == ["goals.sql", "zz_copy.sql"]


def test_changed_repeatable_file_is_reapplied_alone(scratch_url: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrate.SQL_DIR, sql_dir)
    migrate.migrate(scratch_url, local=True, sql_dir=sql_dir)
    rls = sql_dir / "functions" / "rls.sql"
    rls.write_text(rls.read_text() + "\ncomment on function private.owns_goal(uuid) is 'edited';\n")
    assert migrate.migrate(scratch_url, local=True, sql_dir=sql_dir) == ["functions/rls.sql"]
    assert migrate.migrate(scratch_url, local=True, sql_dir=sql_dir) == []
    with psycopg.connect(scratch_url) as conn:
        comment = conn.execute("select obj_description('private.owns_goal(uuid)'::regprocedure)").fetchone()
    assert comment == ("edited",)


def test_broken_repeatable_file_changes_nothing(scratch_url: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrate.SQL_DIR, sql_dir)
    migrate.migrate(scratch_url, local=True, sql_dir=sql_dir)
    rls = sql_dir / "functions" / "rls.sql"
    rls.write_text("comment on function private.owns_goal(uuid) is 'half';\nselect broken syntax;\n")
    with pytest.raises(migrate.MigrationError, match=r"functions/rls\.sql failed"):
        migrate.migrate(scratch_url, local=True, sql_dir=sql_dir)
    with psycopg.connect(scratch_url) as conn:
        comment = conn.execute("select obj_description('private.owns_goal(uuid)'::regprocedure)").fetchone()
    assert comment == (None,)


# Functions the repeatable files have changed or added on purpose since they took over from the
# numbered migrations; everything else must dump exactly as the numbered chain left it.
CHANGED_SINCE_MOVE = frozenset(
    {
        # Notices queued with their state change (issue 11).
        "app.finish_consequence",
        "app.record_grade",
        "app.queue_notification",
        # Earmarks and integer-cent shares (issue 12).
        "app.claim_consequence",
        "app.record_transfer",
        "app.detect_missed_deadlines",
        "app.release_stake",
        "app.goal_owed_cents",
        "app.begin_withdrawal",
        "app.record_external_refund",
        "app.ledger_post",
        "app.record_dispute",
        "private.reserved_takings",
        "private.check_goal_money",
        "public.consequences consequences_goal_money",
        "public.ledger_entries ledger_entries_goal_money",
        # Contacts are other people, declined for good, invited at a bounded rate (issue 13).
        "app.guard_contact_address",
        "app.suppress_declined_contact",
        "app.claim_notification",
        "public.contacts contacts_guard_address",
        "public.contacts contacts_suppress_declined",
        # What a consequence needs is fixed when it is created (issue 13).
        "app.fix_consequence_recipients",
        "app.x_connection_in_use",
        "app.guard_contacts",
        "private.contact_awaits_consequence",
        "public.consequences consequences_fix_recipients",
        # A vouch moves a fail to human review; grading requests are counted (issue 13).
        "app.record_vouch",
        "app.note_grading_request",
        # Names the targets read are locked while they matter (issue 13).
        "app.guard_users",
        "app.guard_goals",
        "private.user_is_committed",
        # Proof protects its checkpoint only when captured in time (issue 13).
        "private.has_protecting_submission",
        "app.guard_submissions",
        # The contest window (issue 14).
        "app.release_held_consequences",
        "app.contest_consequence",
        "app.decide_consequence",
        "app.announce_held_consequence",
        "app.decide_submission",
        "app.abort_grading",
        "public.consequences consequences_announce_held",
        # The books agree with Stripe (issue 18).
        "app.credit_deposit",
        "app.record_refund",
        "app.stripe_moved",
        "app.platform_post",
        "app.raise_money_item",
        "app.book_platform_loss",
        "app.record_external_refund_failure",
        "app.record_transfer_reversal",
        "app.book_stripe_fee",
        "app.book_payout",
        "app.books",
        "app.books_difference",
        "app.resolve_money_item",
        # The pg_cron job sends a secret key in apikey too (issue 16).
        "app.check_missed_deadlines",
        # Leaving (issue 19).
        "private.erasure_blocker",
        "app.erase_user",
        "app.on_auth_user_delete",
        "app.guard_leaving_goals",
        "app.expire_kompromat",
        "app.purge_tombstones",
        "auth.users auth_users_erase",
        "public.goals goals_guard_leaving",
        # The akrasia horizon (issue 15).
        "private.refuse_inside_horizon",
        "private.goal_checkpoint",
        "private.apply_goal_change",
        "app.request_goal_change",
        "app.apply_due_goal_changes",
        "app.cancel_goal_change",
        # Proof made for this checkpoint: fingerprints and challenge phrases (issue 20).
        "app.guard_checkpoints",
        "private.challenge_phrase",
        "app.issue_proof_phrase",
        "app.open_checkpoint",
        "public.checkpoints checkpoints_open_next",
        "public.goals goals_open_first",
        # Advisor: every function's search_path fixed; an insert in time protects however late its
        # capture; time decides at a change's effective time.
        "private.is_privileged",
        "private.random_u32",
        # Erasure reaches backups: derived tombstones, the erasure log, the master keys' lifecycle.
        "private.tombstone_of",
        "app.reapply_erasure",
        "app.sync_master_keys",
        # Nobody decides their own case; a description frozen once it waits for a verdict.
        "private.refuse",
        # What a deadline costs is fixed when the goal activates (checkpoints.stake_cents).
        "app.activate_goal",
        "private.settle_final_part",
        "app.activate_own_goal",
        # Disputes never free the stake: what a dispute took goes back where it came from.
        "app.goal_disputed_cents",
        "private.dispute_goal_takings",
        "private.reinstate_dispute",
        "private.dispute_step",
        # Money items resolved by action.
        "app.money_item_actions",
    }
)


def _dump(url: str) -> str:
    result = subprocess.run(
        [str(POSTGRES_BIN / "pg_dump"), "--schema-only", "--no-owner", "--dbname", url],
        capture_output=True,
        text=True,
        check=True,
    )
    return re.sub(r"^\\(un)?restrict .*$", "", result.stdout, flags=re.MULTILINE)


def _sections(dump: str) -> dict[str, str]:
    """pg_dump's sections by their header line; functions changed on purpose left out."""
    found: dict[str, str] = {}
    for part in re.split(r"\n--\n-- (?=Name: )", dump)[1:]:
        header, _, body = part.partition("\n")
        name = header.split(";")[0].removeprefix("Name: ").removeprefix("FUNCTION ")
        schema = re.search(r"Schema: ([\w-]+)", header)
        qualified = f"{schema.group(1)}.{name.split('(')[0]}" if schema else name
        if qualified not in CHANGED_SINCE_MOVE:
            found[header] = body.strip()
    return found


def test_repeatable_files_leave_the_numbered_schema_identical(scratch_url: str, pg_admin_url: str) -> None:
    migrate.migrate(scratch_url, local=True)
    with_repeatables = _sections(_dump(scratch_url))
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(name)))
    numbered_only = pg_admin_url.replace("/postgres?", f"/{name}?")
    try:
        with psycopg.connect(numbered_only, autocommit=True) as conn:
            for step in migrate.discover(local=True):
                conn.execute(step.sql.encode("utf-8"))
        before = _sections(_dump(numbered_only))
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("drop database {} with (force)").format(psycopg.sql.Identifier(name)))
    before = {k: v for k, v in before.items() if "schema_migrations" not in k and "repeatable_migrations" not in k}
    after = {
        k: v for k, v in with_repeatables.items() if "schema_migrations" not in k and "repeatable_migrations" not in k
    }
    assert sorted(set(before) ^ set(after)) == []
    assert [k for k in before if before[k] != after[k]] == []


def test_migrations_pass_the_squawk_linter(repo_root: Path, tmp_path: Path) -> None:
    """What squawk finds is fixed or excluded with its reason (.squawk.toml, inline comments)."""
    migrations = sorted(f"sql/{p.name}" for p in (repo_root / "sql").glob("0*.sql"))  # as make lint names them
    result = subprocess.run(
        [str(repo_root / ".venv/bin/squawk"), *migrations],
        cwd=repo_root,
        capture_output=True,
        text=True,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # And it does find what it should: a plain ADD VALUE in a new file is flagged.
    probe = tmp_path / "999_probe.sql"
    probe.write_text("alter type public.goal_status add value if not exists 'probe';\n")
    flagged = subprocess.run(
        [str(repo_root / ".venv/bin/squawk"), str(probe)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )
    assert flagged.returncode != 0 and "require-enum-value-ordering" in flagged.stdout
