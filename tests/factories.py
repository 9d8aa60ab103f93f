"""Builders for test data, written as the database owner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg

Conn = psycopg.Connection[dict[str, Any]]


def now() -> datetime:
    return datetime.now(UTC)


def user(conn: Conn, name: str = "alice") -> UUID:
    """A Supabase Auth user; the trigger makes their public.users row."""
    user_id = uuid4()
    conn.execute(
        "insert into auth.users (id, email) values (%s, %s)",
        [user_id, f"{name}-{user_id.hex[:8]}@example.com"],
    )
    return user_id


def contact(
    conn: Conn,
    user_id: UUID,
    *,
    roles: tuple[str, ...] = ("witness", "consequence_target"),
    verified: bool = True,
    email: str | None = None,
) -> UUID:
    row = conn.execute(
        "insert into public.contacts (user_id, name, email, role, verified, verified_at)"
        " values (%s, 'A Contact', %s, %s::public.contact_role[], %s,"
        " case when %s then now() end) returning id",
        [user_id, email or f"c-{uuid4().hex[:8]}@example.com", list(roles), verified, verified],
    ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def kompromat(conn: Conn, user_id: UUID, severity: str = "major") -> UUID:
    row = conn.execute(
        "insert into public.kompromat (user_id, original_filename, file_type, severity,"
        " encrypted_content, key_id, size_bytes) values (%s, 'photo.jpg', 'image/jpeg', %s,"
        " '\\x00'::bytea, 'k1', 1) returning id",
        [user_id, severity],
    ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def goal(
    conn: Conn,
    user_id: UUID,
    *,
    days: int = 30,
    stake: str = "90.00",
    referee: str = "ai",
    witness: UUID | None = None,
    checkpoints: int = 2,
    minor: UUID | None = None,
    major: UUID | None = None,
    activate: bool = True,
    fund: bool = True,
    challenge: bool = False,
) -> UUID:
    """A goal with evenly spaced checkpoints; funded and activated (final checkpoint added) by default."""
    final = now() + timedelta(days=days)
    row = conn.execute(
        "insert into public.goals (user_id, title, final_deadline, grading_rubric, referee_type,"
        " witness_contact_id, monetary_stake, charity_destination, minor_kompromat_id,"
        " major_kompromat_id, proof_challenge) values (%s, 'Write the book', %s, 'A full draft', %s, %s, %s,"
        " 'givedirectly', %s, %s, %s) returning id",
        [user_id, final, referee, witness, stake, minor, major, challenge],
    ).fetchone()
    assert row is not None
    goal_id = UUID(str(row["id"]))
    for position in range(1, checkpoints + 1):
        conn.execute(
            "insert into public.checkpoints (goal_id, title, deadline, order_position) values (%s, %s, %s, %s)",
            [
                goal_id,
                f"Checkpoint {position}",
                now() + timedelta(days=days * position / (checkpoints + 1)),
                position,
            ],
        )
    if activate:
        if fund:
            fund_user(conn, user_id, round(float(stake) * 100))
        conn.execute("select app.activate_goal(%s)", [goal_id])
    return goal_id


def fund_user(conn: Conn, user_id: UUID, cents: int) -> str:
    """Credit a card deposit, as the Stripe webhook would; returns its PaymentIntent id."""
    intent = f"pi_test_{uuid4().hex[:16]}"
    if cents > 0:
        conn.execute("select app.credit_deposit(%s, %s, %s)", [user_id, cents, intent])
    return intent


def checkpoint_ids(conn: Conn, goal_id: UUID) -> list[UUID]:
    rows = conn.execute(
        "select id from public.checkpoints where goal_id = %s order by order_position", [goal_id]
    ).fetchall()
    return [UUID(str(r["id"])) for r in rows]


def submission(
    conn: Conn,
    user_id: UUID,
    checkpoint_id: UUID,
    *,
    status: str = "pending",
    url: str = "https://example.com/proof",
    captured: bool = True,
) -> UUID:
    """Captured as it is made by default, as grade_submission does first; the grading tests
    pass captured=False and let grade_submission capture for real."""
    row = conn.execute(
        "insert into public.submissions (checkpoint_id, user_id, submission_type, external_url, status,"
        " captured_at) values (%s, %s, 'url', %s, %s, case when %s then now() end) returning id",
        [checkpoint_id, user_id, url, status, captured],
    ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def consequence(conn: Conn, user_id: UUID, goal_id: UUID, checkpoint_id: UUID, kind: str = "monetary") -> UUID:
    row = conn.execute(
        "insert into public.consequences (checkpoint_id, goal_id, user_id, consequence_type,"
        " monetary_amount, charity_destination) values (%s, %s, %s, %s, 10.00, 'givedirectly')"
        " returning id",
        [checkpoint_id, goal_id, user_id, kind],
    ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))
