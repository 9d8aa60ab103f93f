"""A user with a valid token tries, through their own rows, every change only the
service may make. Each is refused with a clear error, and the row is unchanged."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import pytest

from shared import db
from tests import factories as f

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def alice(owner: Conn) -> dict[str, UUID]:
    user = f.user(owner, "alice")
    witness = f.contact(owner, user)
    minor, major = f.kompromat(owner, user, "minor"), f.kompromat(owner, user, "major")
    goal = f.goal(owner, user, witness=witness, minor=minor, major=major)
    checkpoint = f.checkpoint_ids(owner, goal)[0]
    return {
        "user": user,
        "goal": goal,
        "checkpoint": checkpoint,
        "witness": witness,
        "minor": minor,
        "major": major,
        "submission": f.submission(owner, user, checkpoint),
        "consequence": f.consequence(owner, user, goal, checkpoint),
        "other_minor": f.kompromat(owner, user, "minor"),
        "other_contact": f.contact(owner, user),
    }


def _refused(user: UUID, sql: str, params: dict[str, Any]) -> str:
    """Run as the user; return the error message, failing if the statement went through."""
    with pytest.raises(psycopg.Error) as caught, db.as_user(user) as conn:
        conn.execute(sql, params)
    assert caught.value.sqlstate == "42501", caught.value
    return str(caught.value.diag.message_primary)


def _row(owner: Conn, table: str, row_id: UUID) -> dict[str, Any] | None:
    query = psycopg.sql.SQL("select * from public.{} where id = %s").format(psycopg.sql.Identifier(table))
    return owner.execute(query, [row_id]).fetchone()


SUBMISSION_GRADING = [
    "vouched_by = user_id",
    "vouched_at = now()",
    "status = 'passed'",
    "ai_analysis_result = '{\"passed\": true}'",
    "human_verdict = 'pass'",
    "graded_at = now()",
]


@pytest.mark.parametrize("assignment", SUBMISSION_GRADING)
def test_escape_user_cannot_grade_own_submission(owner: Conn, alice: dict[str, UUID], assignment: str) -> None:
    before = _row(owner, "submissions", alice["submission"])
    message = _refused(alice["user"], f"update public.submissions set {assignment} where id = %(submission)s", alice)
    assert "grading fields are set only by the grader" in message
    assert _row(owner, "submissions", alice["submission"]) == before


def test_escape_user_cannot_swap_proof_after_submitting(owner: Conn, alice: dict[str, UUID]) -> None:
    before = _row(owner, "submissions", alice["submission"])
    message = _refused(
        alice["user"],
        "update public.submissions set external_url = 'https://new.example' where id = %(submission)s",
        alice,
    )
    assert "cannot be changed after it is made" in message
    assert _row(owner, "submissions", alice["submission"]) == before


def test_escape_user_cannot_insert_a_passed_submission(owner: Conn, alice: dict[str, UUID]) -> None:
    message = _refused(
        alice["user"],
        "insert into public.submissions (checkpoint_id, user_id,"
        " submission_type, external_url, status) values (%(checkpoint)s, %(user)s, 'url',"
        " 'https://x.example', 'passed')",
        alice,
    )
    assert "grader" in message
    count = owner.execute("select count(*) as n from public.submissions").fetchone()
    assert count == {"n": 1}


def test_escape_user_cannot_backdate_a_submission(owner: Conn, alice: dict[str, UUID]) -> None:
    with db.as_user(alice["user"]) as conn:
        row = conn.execute(
            "insert into public.submissions (checkpoint_id, user_id, submission_type, external_url,"
            " submitted_at) values (%(checkpoint)s, %(user)s, 'url', 'https://x.example',"
            " '2000-01-01') returning submitted_at > now() - interval '1 minute' as fresh",
            alice,
        ).fetchone()
    assert row == {"fresh": True}


@pytest.mark.parametrize(
    "assignment",
    [
        "execution_status = 'completed'",
        "monetary_amount = 0",
        "attempts = 99",
    ],
)
def test_escape_user_cannot_change_a_consequence(owner: Conn, alice: dict[str, UUID], assignment: str) -> None:
    before = _row(owner, "consequences", alice["consequence"])
    message = _refused(alice["user"], f"update public.consequences set {assignment} where id = %(consequence)s", alice)
    assert "permission denied for table consequences" in message
    assert _row(owner, "consequences", alice["consequence"]) == before


ACTIVE_GOAL_TERMS = [
    "monetary_stake = 0",
    "final_deadline = final_deadline + interval '30 days'",
    "referee_type = 'human_witness'",
    "witness_contact_id = %(other_contact)s",
    "charity_destination = 'unicef'",
    "minor_kompromat_id = %(other_minor)s",
    "major_kompromat_id = null",
    "grading_rubric = 'anything passes'",
]


@pytest.mark.parametrize("assignment", ACTIVE_GOAL_TERMS)
def test_escape_user_cannot_change_an_active_goals_terms(owner: Conn, alice: dict[str, UUID], assignment: str) -> None:
    before = _row(owner, "goals", alice["goal"])
    message = _refused(alice["user"], f"update public.goals set {assignment} where id = %(goal)s", alice)
    assert "the goal is active" in message
    assert _row(owner, "goals", alice["goal"]) == before


@pytest.mark.parametrize("status", ["completed", "draft", "failed"])
def test_escape_user_cannot_change_a_goals_status(owner: Conn, alice: dict[str, UUID], status: str) -> None:
    before = _row(owner, "goals", alice["goal"])
    message = _refused(alice["user"], f"update public.goals set status = '{status}' where id = %(goal)s", alice)
    assert "status changes only through the service" in message
    assert _row(owner, "goals", alice["goal"]) == before


def test_escape_user_cannot_retitle_an_active_goal(owner: Conn, alice: dict[str, UUID]) -> None:
    """Issue 13, problem 7: the title goes into the humiliation email; it was editable to hide or
    rewrite the message. The draft's description and checkpoints' wording are not the targets'."""
    before = _row(owner, "goals", alice["goal"])
    message = _refused(alice["user"], "update public.goals set title = '</p><p>Nothing' where id = %(goal)s", alice)
    assert "title" in message
    assert _row(owner, "goals", alice["goal"]) == before
    draft = f.goal(owner, alice["user"], activate=False)
    with db.as_user(alice["user"]) as conn:
        conn.execute("update public.goals set title = 'Renamed' where id = %s", [draft])


def test_escape_user_cannot_rename_themselves_while_committed(owner: Conn, alice: dict[str, UUID]) -> None:
    owner.execute("update public.users set display_name = 'Alice' where id = %(user)s", alice)
    message = _refused(
        alice["user"], "update public.users set display_name = 'Someone Else' where id = %(user)s", alice
    )
    assert "display name" in message
    bob = f.user(owner, "bob")  # nothing at stake: free to rename
    with db.as_user(bob) as conn:
        conn.execute("update public.users set display_name = 'Bobby' where id = %s", [bob])


def test_escape_user_cannot_create_an_active_goal(owner: Conn, alice: dict[str, UUID]) -> None:
    message = _refused(
        alice["user"],
        "insert into public.goals (user_id, title, final_deadline,"
        " grading_rubric, referee_type, monetary_stake, charity_destination, status)"
        " values (%(user)s, 't', now() + interval '9 days', 'r', 'ai', 5, 'unicef',"
        " 'active')",
        alice,
    )
    assert "created as a draft" in message


def test_escape_user_cannot_delete_an_active_goal(owner: Conn, alice: dict[str, UUID]) -> None:
    message = _refused(alice["user"], "delete from public.goals where id = %(goal)s", alice)
    assert "only a draft goal can be deleted" in message
    assert _row(owner, "goals", alice["goal"]) is not None


@pytest.mark.parametrize("which", ["minor", "major"])
def test_escape_user_cannot_delete_kompromat_of_an_active_goal(owner: Conn, alice: dict[str, UUID], which: str) -> None:
    message = _refused(alice["user"], f"delete from public.kompromat where id = %({which})s", alice)
    assert "attached to an active goal" in message
    assert _row(owner, "kompromat", alice[which]) is not None


def test_escape_user_cannot_replace_kompromat_content(owner: Conn, alice: dict[str, UUID]) -> None:
    before = owner.execute(
        "select encrypted_content, severity from public.kompromat where id = %s", [alice["major"]]
    ).fetchone()
    message = _refused(alice["user"], "update public.kompromat set file_path = 'swap.jpg' where id = %(major)s", alice)
    assert "written only by the vault" in message
    after = owner.execute(
        "select encrypted_content, severity from public.kompromat where id = %s", [alice["major"]]
    ).fetchone()
    assert after == before


@pytest.mark.parametrize(
    "assignment", ["status = 'completed'", "completed_at = now()", "status = 'missed'", "is_final = true"]
)
def test_escape_user_cannot_complete_a_checkpoint(owner: Conn, alice: dict[str, UUID], assignment: str) -> None:
    before = _row(owner, "checkpoints", alice["checkpoint"])
    message = _refused(alice["user"], f"update public.checkpoints set {assignment} where id = %(checkpoint)s", alice)
    assert "only by the service" in message
    assert _row(owner, "checkpoints", alice["checkpoint"]) == before


@pytest.mark.parametrize(
    "assignment",
    ["deadline = deadline + interval '1 day'", "requirements = 'nothing'", "order_position = 42"],
)
def test_escape_user_cannot_move_an_active_goals_checkpoint(
    owner: Conn, alice: dict[str, UUID], assignment: str
) -> None:
    before = _row(owner, "checkpoints", alice["checkpoint"])
    _refused(alice["user"], f"update public.checkpoints set {assignment} where id = %(checkpoint)s", alice)
    assert _row(owner, "checkpoints", alice["checkpoint"]) == before


def test_escape_user_cannot_delete_an_active_goals_checkpoint(owner: Conn, alice: dict[str, UUID]) -> None:
    _refused(alice["user"], "delete from public.checkpoints where id = %(checkpoint)s", alice)
    assert _row(owner, "checkpoints", alice["checkpoint"]) is not None


@pytest.mark.parametrize(
    "assignment", ["holding_cell_balance = 1000", "stripe_customer_id = 'cus_x'", "email = 'new@example.com'"]
)
def test_escape_user_cannot_touch_money_fields(owner: Conn, alice: dict[str, UUID], assignment: str) -> None:
    before = _row(owner, "users", alice["user"])
    message = _refused(alice["user"], f"update public.users set {assignment} where id = %(user)s", alice)
    assert "managed by the service" in message
    assert _row(owner, "users", alice["user"]) == before


def test_escape_user_cannot_verify_a_contact(owner: Conn, alice: dict[str, UUID]) -> None:
    owner.execute(
        "update public.contacts set verified = false, verified_at = null where id = %s",
        [alice["other_contact"]],
    )
    before = _row(owner, "contacts", alice["other_contact"])
    _refused(alice["user"], "update public.contacts set verified = true where id = %(other_contact)s", alice)
    assert _row(owner, "contacts", alice["other_contact"]) == before


def test_escape_user_cannot_remove_consequence_targets_while_a_goal_is_active(
    owner: Conn, alice: dict[str, UUID]
) -> None:
    message = _refused(alice["user"], "delete from public.contacts where id = %(other_contact)s", alice)
    assert "while you have an active goal" in message
    assert _row(owner, "contacts", alice["other_contact"]) is not None


def test_escape_contact_email_change_resets_verification(owner: Conn) -> None:
    carol = f.user(owner, "carol")
    contact = f.contact(owner, carol)
    with db.as_user(carol) as conn:
        conn.execute("update public.contacts set email = 'someone.else@example.com' where id = %s", [contact])
    row = _row(owner, "contacts", contact) or {}
    assert (row["verified"], row["verified_at"]) == (False, None)
