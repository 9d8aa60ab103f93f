"""A small demo for local development: a user, contacts, and an active goal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from shared.db import Connection, Json, transaction

DEMO_USER_ID = UUID("a11ce000-0000-4000-8000-000000000001")
DEMO_EMAIL = "demo@example.com"
DEV_OPERATOR_ID = UUID("0be2a702-0000-4000-8000-000000000002")
DEV_OPERATOR_EMAIL = "operator@example.com"


def seed_demo(conn: Connection | None = None) -> dict[str, Any]:
    """Create the demo once; later runs return what is there."""
    if conn is None:
        # As the database owner: auth.users is Supabase Auth's table, not an API role's.
        with transaction() as owner_conn:
            return seed_demo(owner_conn)
    conn.execute(
        "insert into auth.users (id, email, email_confirmed_at) values (%s, %s, now()) on conflict (id) do nothing",
        [DEMO_USER_ID, DEMO_EMAIL],
    )
    # The development operator make dev prints a token for (the console takes it outside production).
    conn.execute(
        "insert into auth.users (id, email, email_confirmed_at, raw_app_meta_data) values (%s, %s, now(), %s)"
        " on conflict (id) do nothing",
        [DEV_OPERATOR_ID, DEV_OPERATOR_EMAIL, Json({"role": "operator"})],
    )
    goal = conn.execute(
        "select id from public.goals where user_id = %s order by created_at limit 1", [DEMO_USER_ID]
    ).fetchone()
    if goal is None:
        now = datetime.now(UTC)
        witness = conn.execute(
            "insert into public.contacts (user_id, name, email, role, verified, verified_at) "
            "values (%s, 'Wanda Witness', 'wanda@example.com', '{witness}', true, now()) returning id",
            [DEMO_USER_ID],
        ).fetchone()
        conn.execute(
            "insert into public.contacts (user_id, name, email, role, verified, verified_at) "
            "values (%s, 'Tom Target', 'tom@example.com', '{consequence_target}', true, now())",
            [DEMO_USER_ID],
        )
        goal = conn.execute(
            "insert into public.goals (user_id, title, description, final_deadline, grading_rubric,"
            " referee_type, witness_contact_id, monetary_stake, charity_destination)"
            " values (%s, 'Finish the novel draft', 'Eighty thousand words by spring.', %s,"
            " 'A complete draft of at least 80,000 words with a beginning, middle and end.',"
            " 'ai', %s, 90.00, 'givedirectly') returning id",
            [DEMO_USER_ID, now + timedelta(days=30), witness["id"] if witness else None],
        ).fetchone()
        assert goal is not None
        for position, (title, days) in enumerate([("Outline", 7), ("First half", 18)], start=1):
            conn.execute(
                "insert into public.checkpoints (goal_id, title, deadline, order_position, requirements)"
                " values (%s, %s, %s, %s, %s)",
                [goal["id"], title, now + timedelta(days=days), position, f"{title} is done."],
            )
        conn.execute("select app.credit_deposit(%s, 10000, 'pi_demo_seed_deposit')", [DEMO_USER_ID])
        conn.execute("select app.activate_goal(%s)", [goal["id"]])
    return {
        "user_id": str(DEMO_USER_ID),
        "email": DEMO_EMAIL,
        "goal_id": str(goal["id"]),
        "operator_id": str(DEV_OPERATOR_ID),
        "operator_email": DEV_OPERATOR_EMAIL,
    }
