"""shared.db: the pool's reuse check and the role set for one transaction."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared import db
from tests import factories as f


@pytest.fixture
def one_connection(database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A pool of exactly one connection, so every transaction below reuses the same one."""
    monkeypatch.setenv("DB_POOL_MAX", "1")
    db.close_pool()
    yield
    db.close_pool()


def _backend_pid() -> int:
    with db.as_service() as conn:
        row = conn.execute("select pg_backend_pid() as pid").fetchone()
    assert row is not None
    return int(row["pid"])


def test_a_connection_dropped_while_idle_is_checked_and_replaced_before_use(
    one_connection: None, owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid()
    monkeypatch.setattr(db, "RECHECK_AFTER_IDLE_SECONDS", 0.0)  # every reuse counts as after an idle spell
    owner.execute("select pg_terminate_backend(%s)", [first])
    second = _backend_pid()  # no error: the check found it dead and the pool connected again
    assert second != first


def test_a_connection_reused_at_once_skips_the_check_and_a_drop_then_is_unavailable(
    one_connection: None, owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load the check's round trip is skipped; a server that drops a connection in that
    window makes one transaction fail as unavailable (a 503 with Retry-After), never a wrong answer."""
    first = _backend_pid()
    monkeypatch.setattr(db, "RECHECK_AFTER_IDLE_SECONDS", 3600.0)
    owner.execute("select pg_terminate_backend(%s)", [first])
    with pytest.raises(Exception) as raised:
        _backend_pid()
    assert db.is_unavailable(raised.value)
    assert _backend_pid() != first  # the broken connection was discarded, the next one works


def test_role_and_claims_last_for_the_transaction_only(one_connection: None, owner: Any) -> None:
    user = f.user(owner)
    with db.as_user(user, email="a@example.com") as conn:
        inside = conn.execute(
            "select current_user as role, current_setting('request.jwt.claims', true) as claims, auth.uid() as uid"
        ).fetchone()
    assert inside is not None
    assert inside["role"] == "authenticated"
    assert json.loads(inside["claims"]) == {
        "sub": str(user),
        "role": "authenticated",
        "aud": "authenticated",
        "email": "a@example.com",
    }
    assert inside["uid"] == user
    with db.transaction() as conn:  # the same pooled connection, next transaction
        after = conn.execute(
            "select current_user as role, coalesce(current_setting('request.jwt.claims', true), '') as claims"
        ).fetchone()
    assert after is not None
    assert after["role"] != "authenticated"
    assert after["claims"] == ""


def test_an_unknown_role_is_refused_before_anything_is_sent(one_connection: None) -> None:
    with pytest.raises(ValueError, match="unknown database role"), db.as_role("postgres", {}):
        pass
