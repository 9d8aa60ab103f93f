"""Ordered SQL migrations, each applied once in its own transaction and recorded
with its checksum in app.schema_migrations. An applied file that has changed
stops the run before anything is applied.

Then the repeatable files (sql/functions/*.sql: functions, triggers, grants,
written with `create or replace`) are re-applied, in name order, whenever their
checksum differs from the one recorded in app.repeatable_migrations. Each
function has exactly one home there, so that file says what it is today."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import psycopg

# Any number fits; it only has to be the same for every migrate run.
_ADVISORY_LOCK_ID = 7_100_202_611
# Every file runs under these (set local: its own transaction only): a migration that waits on a
# busy table's lock gives up instead of queueing every query behind it, and none runs unbounded.
# This is why squawk's require-lock-timeout and require-statement-timeout are off (.squawk.toml).
LOCK_TIMEOUT = "10s"
STATEMENT_TIMEOUT = "10min"

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


class MigrationError(RuntimeError):
    """A migration cannot be applied; the message says which file and why."""


@dataclass(frozen=True)
class Migration:
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover_repeatable(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The repeatable files, in name order."""
    return [Migration(f"functions/{p.name}", p) for p in sorted((sql_dir / "functions").glob("*.sql"))]


def discover(sql_dir: Path = SQL_DIR, *, local: bool = False) -> list[Migration]:
    """The migrations in order: sql/local/*.sql first when local, then sql/*.sql."""
    found: list[Migration] = []
    if local:
        found += [Migration(f"local/{p.name}", p) for p in sorted((sql_dir / "local").glob("*.sql"))]
    found += [Migration(p.name, p) for p in sorted(sql_dir.glob("*.sql"))]
    if not found:
        raise MigrationError(f"no migrations found under {sql_dir}")
    return found


_BOOKKEEPING = """
create schema if not exists app;
create table if not exists app.schema_migrations (
  filename text primary key,
  checksum text not null,
  applied_at timestamptz not null default now()
);
revoke all on app.schema_migrations from public;
create table if not exists app.repeatable_migrations (
  filename text primary key,
  checksum text not null,
  applied_at timestamptz not null default now()
);
revoke all on app.repeatable_migrations from public;
"""


def applied(conn: psycopg.Connection[tuple[str, str]]) -> dict[str, str]:
    exists = conn.execute("select to_regclass('app.schema_migrations') is not null").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("select filename, checksum from app.schema_migrations").fetchall()
    return {name: checksum for name, checksum in rows}


def _changed_repeatables(conn: psycopg.Connection[tuple[str, str]], files: list[Migration]) -> list[Migration]:
    rows = conn.execute("select filename, checksum from app.repeatable_migrations").fetchall()
    done = {name: checksum for name, checksum in rows}
    return [m for m in files if done.get(m.name) != m.checksum]


def pending(conninfo: str, *, local: bool = False, sql_dir: Path = SQL_DIR) -> list[str]:
    """Names of migrations not yet applied (raises if an applied one changed)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        done = applied(conn)
    return [m.name for m in _check(discover(sql_dir, local=local), done)]


def _check(migrations: list[Migration], done: dict[str, str]) -> list[Migration]:
    todo = []
    for migration in migrations:
        recorded = done.get(migration.name)
        if recorded is None:
            todo.append(migration)
        elif recorded != migration.checksum:
            raise MigrationError(
                f"{migration.name} has changed since it was applied "
                f"(recorded checksum {recorded[:12]}, file now {migration.checksum[:12]}); "
                "applied migrations are never edited: add a new file instead"
            )
    return todo


def _bounded(conn: psycopg.Connection[object]) -> None:
    conn.execute(f"set local lock_timeout = '{LOCK_TIMEOUT}'")
    conn.execute(f"set local statement_timeout = '{STATEMENT_TIMEOUT}'")


def migrate(conninfo: str, *, local: bool = False, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply what is pending, in order, then every changed repeatable file; return the names applied.

    Safe to run again: a second run applies nothing."""
    migrations = discover(sql_dir, local=local)
    repeatables = discover_repeatable(sql_dir)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", [_ADVISORY_LOCK_ID])
        try:
            conn.execute(_BOOKKEEPING)
            todo = _check(migrations, applied(conn))
            for migration in todo:
                with conn.transaction():
                    _bounded(conn)
                    try:
                        conn.execute(migration.sql.encode("utf-8"))
                    except psycopg.Error as error:
                        raise MigrationError(f"{migration.name} failed: {error}") from error
                    conn.execute(
                        "insert into app.schema_migrations (filename, checksum) values (%s, %s)",
                        [migration.name, migration.checksum],
                    )
            changed = _changed_repeatables(conn, repeatables)
            for repeatable in changed:
                with conn.transaction():
                    _bounded(conn)
                    # Bodies may name functions another repeatable file defines; pg_dump does the same.
                    conn.execute("set local check_function_bodies = off")
                    try:
                        conn.execute(repeatable.sql.encode("utf-8"))
                    except psycopg.Error as error:
                        raise MigrationError(f"{repeatable.name} failed: {error}") from error
                    conn.execute(
                        "insert into app.repeatable_migrations (filename, checksum) values (%s, %s)"
                        " on conflict (filename) do update set checksum = excluded.checksum, applied_at = now()",
                        [repeatable.name, repeatable.checksum],
                    )
            return [m.name for m in todo] + [m.name for m in changed]
        finally:
            conn.execute("select pg_advisory_unlock(%s)", [_ADVISORY_LOCK_ID])
