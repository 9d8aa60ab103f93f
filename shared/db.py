"""Database access: a lazy psycopg pool, transactions, and role-scoped sessions.

`as_user` runs statements as Supabase's `authenticated` role with the caller's
JWT claims set for the transaction, so RLS applies exactly as it would through
PostgREST. `as_service` runs as `service_role`, the only role allowed to call
the state functions in the `app` schema.

psycopg is imported on first use, not at import: a function pays for it only
on the paths that reach the database (cold start is part of the product).
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias
from uuid import UUID

from shared.config import get_settings

if TYPE_CHECKING:
    import psycopg
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool

    Connection: TypeAlias = psycopg.Connection[dict[str, Any]]
else:
    Connection = Any

# SQLSTATE classes of an unreachable or restarting server: connection exceptions,
# insufficient resources, operator intervention (shutdown, crash recovery).
_UNAVAILABLE_CLASSES = ("08", "53", "57")

_pool: ConnectionPool[Connection] | None = None
_pool_lock = threading.Lock()

# A connection given back to the pool this recently is not checked again before reuse: under load
# that round trip was one in six of a transaction's. One idle for longer is checked (and replaced
# if the server or a pooler dropped it), so an instance waking up never meets a dead connection.
RECHECK_AFTER_IDLE_SECONDS = 2.0
_returned_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def _note_returned(conn: Connection) -> None:
    _returned_at[conn] = time.monotonic()


def _check_if_idle(conn: Connection) -> None:
    returned = _returned_at.get(conn)
    if returned is not None and time.monotonic() - returned < RECHECK_AFTER_IDLE_SECONDS:
        return
    from psycopg_pool import ConnectionPool

    ConnectionPool.check_connection(conn)


def Json(value: Any) -> Jsonb:
    """Bind a value as jsonb."""
    from psycopg.types.json import Jsonb

    return Jsonb(value)


def is_rule_refusal(error: BaseException) -> bool:
    """True when a state function refused the change as against the money rules (SQLSTATE 23514)."""
    return getattr(error, "sqlstate", None) == "23514"


def is_unavailable(error: BaseException) -> bool:
    """True for a lost or refused connection, a full pool, or a server going down."""
    import sys

    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(error, psycopg.Error):
        return False  # psycopg never loaded: this cannot be a database error
    from psycopg_pool import PoolTimeout

    if isinstance(error, PoolTimeout):
        return True
    sqlstate = error.sqlstate
    if sqlstate is None:
        return isinstance(error, psycopg.OperationalError)
    return sqlstate[:2] in _UNAVAILABLE_CLASSES


def pool() -> ConnectionPool[Connection]:
    """The process-wide pool, opened on first use (never at import)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                from psycopg.rows import dict_row
                from psycopg_pool import ConnectionPool

                settings = get_settings()
                # Published only once open: another thread that sees it never finds it "not open yet".
                opened: ConnectionPool[Connection] = ConnectionPool(
                    settings.database_url.get_secret_value(),
                    min_size=1,
                    max_size=settings.db_pool_max,
                    timeout=settings.db_pool_timeout_seconds,
                    # Supabase's transaction pooler cannot keep prepared statements.
                    kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": None},
                    check=_check_if_idle,
                    reset=_note_returned,
                    open=False,
                    name="threativator",
                )
                opened.open(wait=False)
                _pool = opened
    return _pool


def close_pool() -> None:
    """Close the pool (tests and shutdown); the next use opens a new one."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


@contextmanager
def transaction() -> Iterator[Connection]:
    """A connection inside one transaction, committed when the block ends cleanly."""
    with pool().connection() as conn, conn.transaction():
        yield conn


def _set_role(conn: Connection, role: str, claims: Mapping[str, Any]) -> None:
    # The role is one of three fixed names.
    if role not in ("authenticated", "anon", "service_role"):
        raise ValueError(f"unknown database role {role!r}")
    # One round trip, as PostgREST does it: set_config('role', ..., true) is SET LOCAL ROLE.
    conn.execute(
        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
        [role, json.dumps(dict(claims))],
    )


@contextmanager
def as_role(role: str, claims: Mapping[str, Any]) -> Iterator[Connection]:
    """A transaction running as an API role with the given JWT claims."""
    with transaction() as conn:
        _set_role(conn, role, claims)
        yield conn


@contextmanager
def as_user(user_id: UUID | str, *, email: str | None = None) -> Iterator[Connection]:
    """A transaction running as the user, with RLS applied."""
    claims: dict[str, Any] = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}
    if email is not None:
        claims["email"] = email
    with as_role("authenticated", claims) as conn:
        yield conn


@contextmanager
def as_service() -> Iterator[Connection]:
    """A transaction running as service_role, for the state functions."""
    with as_role("service_role", {"role": "service_role"}) as conn:
        yield conn
