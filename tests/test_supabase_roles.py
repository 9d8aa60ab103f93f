"""The migrations apply as Supabase applies them: as `postgres`, which on Supabase is no superuser.

A role with the attributes and memberships Supabase's init scripts give `postgres` (NOSUPERUSER
INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS; member of the API roles, pg_read_all_data,
pg_signal_backend, pg_monitor) migrates a fresh database on which the platform's own schemas are owned
as on Supabase: `auth` by supabase_auth_admin (since April 2025 `postgres` is no longer a member of it,
so it keeps privileges on auth.users but not ownership), `storage` by supabase_storage_admin, pg_cron
and pg_net created by the superuser (supautils' privileged extensions) with their grants to postgres.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shared.dev import migrate

ROLE = "supabase_postgres"  # plays `postgres`; the embedded server's superuser already has that name

PLATFORM_ROLES = f"""
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin nosuperuser noinherit createrole login;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'supabase_storage_admin') then
    create role supabase_storage_admin nosuperuser noinherit createrole login;
  end if;
  if not exists (select 1 from pg_roles where rolname = '{ROLE}') then
    create role {ROLE} nosuperuser inherit createrole createdb login replication bypassrls;
  end if;
end
$$;
grant anon, authenticated, service_role, pg_read_all_data, pg_signal_backend, pg_monitor to {ROLE};
"""

# What Supabase has in place before a project's first migration, owned as it owns it.
PLATFORM_OWNERS = f"""
alter schema auth owner to supabase_auth_admin;
alter table auth.users owner to supabase_auth_admin;
alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;
grant usage on schema auth to {ROLE};
grant all on auth.users to {ROLE};
grant execute on all functions in schema auth to {ROLE};

alter schema storage owner to supabase_storage_admin;
alter table storage.buckets owner to supabase_storage_admin;
alter table storage.objects owner to supabase_storage_admin;
grant all on schema storage to {ROLE};
grant all on storage.buckets, storage.objects to {ROLE};

create extension if not exists pg_cron;
create extension if not exists pg_net;
grant usage on schema cron, net to {ROLE};
grant all on all tables in schema cron, net to {ROLE};
grant all on all sequences in schema cron, net to {ROLE};
grant execute on all functions in schema cron, net to {ROLE};

grant usage on schema vault to {ROLE};
grant select on vault.secrets, vault.decrypted_secrets to {ROLE};
"""


@pytest.fixture
def supabase_like(pg_admin_url: str) -> Iterator[tuple[str, str]]:
    """(the database as its superuser, the same database as the non-superuser `postgres`)."""
    name = f"supa_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(PLATFORM_ROLES)
        conn.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(name), sql.Identifier(ROLE)))
    admin = pg_admin_url.replace("/postgres?", f"/{name}?")
    with psycopg.connect(admin, autocommit=True) as conn:
        for standin in sorted((migrate.SQL_DIR / "local").glob("*.sql")):
            conn.execute(standin.read_text(encoding="utf-8").encode())
        conn.execute(PLATFORM_OWNERS.encode())
        user = conn.info.user
    as_postgres = admin.replace(f"//{user}@", f"//{ROLE}@", 1) if f"//{user}@" in admin else admin + f"&user={ROLE}"
    yield admin, as_postgres
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


def test_migrations_apply_as_supabase_s_non_superuser_postgres(supabase_like: tuple[str, str]) -> None:
    admin, as_postgres = supabase_like
    with psycopg.connect(as_postgres) as conn:
        me = conn.execute("select current_user, rolsuper from pg_roles where rolname = current_user").fetchone()
    assert me == (ROLE, False)

    applied = migrate.migrate(as_postgres)  # not --local: the platform is already there, as on Supabase
    numbered = sorted(p.name for p in migrate.SQL_DIR.glob("*.sql"))
    repeatable = sorted(f"functions/{p.name}" for p in (migrate.SQL_DIR / "functions").glob("*.sql"))
    assert applied == numbered + repeatable
    assert migrate.migrate(as_postgres) == []  # and a second run applies nothing

    with psycopg.connect(admin) as conn:
        owner = conn.execute("select tableowner from pg_tables where schemaname = 'auth' and tablename = 'users'")
        assert owner.fetchone() == ("supabase_auth_admin",)
        triggers = conn.execute(
            "select tgname from pg_trigger where tgrelid = 'auth.users'::regclass and not tgisinternal order by 1"
        ).fetchall()
        assert triggers == [("auth_users_erase",), ("on_auth_user_saved",)]
        job = conn.execute("select jobname, username from cron.job").fetchall()
        assert job == [("check-deadlines", ROLE)]
        functions = conn.execute(
            "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname in ('app', 'private') and pg_get_userbyid(p.proowner) <> %s",
            [ROLE],
        ).fetchone()
        assert functions == (0,)  # every function ours, none left to a superuser


def test_a_changed_erasure_file_reapplies_as_the_non_superuser(supabase_like: tuple[str, str], tmp_path: Path) -> None:
    """The repeatable file that replaces the trigger on auth.users runs again on every change: it must
    not need to own the table (dropping a trigger does; `create or replace trigger` does not)."""
    _, as_postgres = supabase_like
    migrate.migrate(as_postgres)
    copy = tmp_path / "sql"
    copy.mkdir()
    for path in migrate.SQL_DIR.glob("*.sql"):
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "functions").mkdir()
    for path in (migrate.SQL_DIR / "functions").glob("*.sql"):
        (copy / "functions" / path.name).write_bytes(path.read_bytes())
    erasure = copy / "functions" / "erasure.sql"
    erasure.write_text(erasure.read_text(encoding="utf-8") + "\n-- changed\n", encoding="utf-8")
    assert migrate.migrate(as_postgres, sql_dir=copy) == ["functions/erasure.sql"]
