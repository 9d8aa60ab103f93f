"""Migrations apply in order, are recorded with checksums, run again as a no-op,
and refuse to continue when an applied file has changed."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from shared.dev import migrate
from shared.dev.cli import main as cli_main


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
    assert first[0] == "local/001_supabase_standins.sql"
    assert first[1:] == sorted(p.name for p in migrate.SQL_DIR.glob("*.sql"))
    fingerprint = _schema_fingerprint(scratch_url)
    assert migrate.migrate(scratch_url, local=True) == []
    assert _schema_fingerprint(scratch_url) == fingerprint
    assert migrate.pending(scratch_url, local=True) == []
    with psycopg.connect(scratch_url) as conn:
        rows = conn.execute("select filename, checksum from app.schema_migrations order by filename").fetchall()
    assert len(rows) == len(first)
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
