"""The schema's constraints reject bad data with clear errors, for every role."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from shared import db
from tests import factories as f

Conn = psycopg.Connection[dict[str, Any]]


def _rejects(conn: Conn, sql: str, params: list[Any] | dict[str, Any]) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught, conn.transaction():
        conn.execute(sql, params)
    return caught.value


@pytest.mark.parametrize("stake", ["-0.01", "10000.01", "99999999"])
def test_constraint_stake_is_non_negative_and_bounded(owner: Conn, stake: str) -> None:
    user = f.user(owner)
    error = _rejects(
        owner,
        "insert into public.goals (user_id, title, final_deadline, grading_rubric,"
        " referee_type, monetary_stake, charity_destination) values (%s, 't',"
        " now() + interval '9 days', 'r', 'ai', %s, 'unicef')",
        [user, stake],
    )
    assert error.sqlstate in ("23514", "22003")
    assert "stake" in str(error) or "numeric field overflow" in str(error)


def test_constraint_checkpoint_not_after_final_deadline(owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, activate=False, checkpoints=0, days=10)
    error = _rejects(
        owner,
        "insert into public.checkpoints (goal_id, title, deadline, order_position)"
        " values (%s, 'late', now() + interval '11 days', 1)",
        [goal],
    )
    assert error.diag.message_primary == "a checkpoint deadline must not be after the goal's final deadline"


def test_constraint_final_deadline_cannot_move_before_a_checkpoint(owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, activate=False, checkpoints=1, days=10)
    error = _rejects(owner, "update public.goals set final_deadline = now() + interval '1 hour' where id = %s", [goal])
    assert "must not be after the goal's final deadline" in str(error)


def test_constraint_order_position_unique_within_goal(owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, activate=False, checkpoints=1)
    error = _rejects(
        owner,
        "insert into public.checkpoints (goal_id, title, deadline, order_position)"
        " values (%s, 'dup', now() + interval '1 day', 1)",
        [goal],
    )
    assert error.sqlstate == "23505"
    assert "checkpoints_order_position_unique_per_goal" in str(error)
    other = f.goal(owner, user, activate=False, checkpoints=1)
    assert f.checkpoint_ids(owner, other)  # the same position in another goal is fine


def test_constraint_witness_must_be_own_witness_contact(owner: Conn) -> None:
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    bobs_witness = f.contact(owner, bob)
    target_only = f.contact(owner, alice, roles=("consequence_target",))
    for contact in (bobs_witness, target_only):
        error = _rejects(
            owner,
            "insert into public.goals (user_id, title, final_deadline, grading_rubric,"
            " referee_type, witness_contact_id, monetary_stake, charity_destination) values"
            " (%s, 't', now() + interval '9 days', 'r', 'human_witness', %s, 1, 'unicef')",
            [alice, contact],
        )
        assert error.diag.message_primary == ("the goal's witness must be one of your contacts with the witness role")


def test_constraint_kompromat_must_be_own_and_of_right_severity(owner: Conn) -> None:
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    cases = [
        ("minor_kompromat_id", f.kompromat(owner, bob, "minor"), "minor kompromat"),
        ("minor_kompromat_id", f.kompromat(owner, alice, "major"), "minor kompromat"),
        ("major_kompromat_id", f.kompromat(owner, alice, "minor"), "major kompromat"),
    ]
    for column, kompromat, words in cases:
        error = _rejects(
            owner,
            f"insert into public.goals (user_id, title, final_deadline, grading_rubric,"
            f" referee_type, {column}, monetary_stake, charity_destination) values"
            " (%s, 't', now() + interval '9 days', 'r', 'ai', %s, 1, 'unicef')",
            [alice, kompromat],
        )
        assert words in str(error)


def test_constraint_one_consequence_per_checkpoint_and_type(owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user)
    checkpoint = f.checkpoint_ids(owner, goal)[0]
    f.consequence(owner, user, goal, checkpoint, "monetary")
    f.consequence(owner, user, goal, checkpoint, "humiliation_email")
    error = _rejects(
        owner,
        "insert into public.consequences (checkpoint_id, goal_id, user_id,"
        " consequence_type, monetary_amount, charity_destination) values"
        " (%s, %s, %s, 'monetary', 5, 'unicef')",
        [checkpoint, goal, user],
    )
    assert "consequences_one_per_checkpoint_and_type" in str(error)


def test_constraint_submission_after_deadline_is_refused(owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user)
    checkpoint = f.checkpoint_ids(owner, goal)[0]
    owner.execute("update public.checkpoints set deadline = now() - interval '1 minute' where id = %s", [checkpoint])
    with pytest.raises(psycopg.Error) as caught, db.as_user(user) as conn:
        conn.execute(
            "insert into public.submissions (checkpoint_id, user_id, submission_type,"
            " external_url) values (%s, %s, 'url', 'https://x.example')",
            [checkpoint, user],
        )
    assert "late proof does not count" in str(caught.value)


def test_constraint_submission_only_for_own_active_goal(owner: Conn) -> None:
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    draft = f.goal(owner, alice, activate=False)
    error = _rejects(
        owner,
        "insert into public.submissions (checkpoint_id, user_id, submission_type,"
        " external_url) values (%s, %s, 'url', 'https://x.example')",
        [f.checkpoint_ids(owner, draft)[0], alice],
    )
    assert "only for an active goal" in str(error)
    active = f.goal(owner, alice)
    error = _rejects(
        owner,
        "insert into public.submissions (checkpoint_id, user_id, submission_type,"
        " external_url) values (%s, %s, 'url', 'https://x.example')",
        [f.checkpoint_ids(owner, active)[0], bob],
    )
    assert "owner of the checkpoint's goal" in str(error)


def test_constraint_submission_proof_matches_its_type(owner: Conn) -> None:
    user = f.user(owner)
    checkpoint = f.checkpoint_ids(owner, f.goal(owner, user))[0]
    error = _rejects(
        owner,
        "insert into public.submissions (checkpoint_id, user_id, submission_type) values (%s, %s, 'file')",
        [checkpoint, user],
    )
    assert "submissions_proof_matches_type" in str(error)


def test_activation_adds_final_checkpoint_at_final_deadline(owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, checkpoints=2)
    rows = owner.execute(
        "select order_position, is_final, deadline = g.final_deadline as at_final"
        " from public.checkpoints c join public.goals g on g.id = c.goal_id"
        " where goal_id = %s order by order_position",
        [goal],
    ).fetchall()
    assert rows[-1] == {"order_position": 3, "is_final": True, "at_final": True}
    assert [r["is_final"] for r in rows] == [False, False, True]
    status = owner.execute("select status from public.goals where id = %s", [goal]).fetchone()
    assert status == {"status": "active"}


def test_activation_refuses_unverified_witness_and_past_checkpoints(owner: Conn) -> None:
    user = f.user(owner)
    unverified = f.contact(owner, user, verified=False)
    goal = f.goal(owner, user, referee="human_witness", witness=unverified, activate=False)
    error = _rejects(owner, "select app.activate_goal(%s)", [goal])
    assert "confirmed their address" in str(error)
    past = f.goal(owner, user, activate=False, checkpoints=1)
    owner.execute("update public.checkpoints set deadline = now() - interval '1 hour' where goal_id = %s", [past])
    error = _rejects(owner, "select app.activate_goal(%s)", [past])
    assert "every checkpoint deadline must be in the future" in str(error)
    error = _rejects(owner, "select app.activate_goal(%s)", [f.goal(owner, user)])
    assert "only a draft goal can be activated" in str(error)


def test_record_grade_pass_completes_checkpoint_and_final_completes_goal(owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, checkpoints=1)
    first, final = f.checkpoint_ids(owner, goal)
    for checkpoint in (first, final):
        submission = f.submission(owner, user, checkpoint)
        with db.as_service() as conn:
            conn.execute("select app.record_grade(%s, 'passed', '{}'::jsonb)", [submission])
    rows = owner.execute(
        "select status from public.checkpoints where goal_id = %s order by order_position", [goal]
    ).fetchall()
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert owner.execute("select status from public.goals where id = %s", [goal]).fetchone() == {"status": "completed"}
    events = owner.execute(
        "select action from public.audit_log where entity = 'goal' and entity_id = %s order by id", [goal]
    ).fetchall()
    assert [e["action"] for e in events] == ["activated", "completed"]


def test_record_grade_refuses_regrade_without_force(owner: Conn) -> None:
    user = f.user(owner)
    checkpoint = f.checkpoint_ids(owner, f.goal(owner, user))[0]
    submission = f.submission(owner, user, checkpoint)
    with db.as_service() as conn:
        conn.execute("select app.record_grade(%s, 'failed')", [submission])
    with pytest.raises(psycopg.Error) as caught, db.as_service() as conn:
        conn.execute("select app.record_grade(%s, 'passed')", [submission])
    assert "already graded" in str(caught.value)
    with db.as_service() as conn:
        conn.execute("select app.record_grade(%s, 'passed', p_force => true)", [submission])
    assert owner.execute("select status from public.checkpoints where id = %s", [checkpoint]).fetchone() == {
        "status": "completed"
    }


def test_record_grade_pass_after_deadline_does_not_complete(owner: Conn) -> None:
    user = f.user(owner)
    checkpoint = f.checkpoint_ids(owner, f.goal(owner, user))[0]
    submission = f.submission(owner, user, checkpoint)
    owner.execute("update public.submissions set submitted_at = now() + interval '1 hour' where id = %s", [submission])
    owner.execute("update public.checkpoints set deadline = now() + interval '30 minutes' where id = %s", [checkpoint])
    with db.as_service() as conn:
        conn.execute("select app.record_grade(%s, 'passed')", [submission])
    assert owner.execute("select status from public.checkpoints where id = %s", [checkpoint]).fetchone() == {
        "status": "pending"
    }


def test_auth_user_trigger_creates_profile_and_follows_email(owner: Conn) -> None:
    user = f.user(owner, "dora")
    owner.execute("update auth.users set email = 'dora.new@example.com' where id = %s", [user])
    row = owner.execute("select email from public.users where id = %s", [user]).fetchone()
    assert row == {"email": "dora.new@example.com"}


def test_constraint_proof_file_must_be_in_the_owners_folder(owner: Conn) -> None:
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    checkpoint = f.checkpoint_ids(owner, f.goal(owner, alice))[0]
    for path in (f"{bob}/their-proof.pdf", "shared/proof.pdf", f"{alice}/../{bob}/x.pdf"):
        with pytest.raises(psycopg.Error, match="submissions_file_in_owners_folder"), db.as_user(alice) as conn:
            conn.execute(
                "insert into public.submissions (checkpoint_id, user_id, submission_type, file_path)"
                " values (%s, %s, 'file', %s)",
                [checkpoint, alice, path],
            )
    with db.as_user(alice) as conn:
        conn.execute(
            "insert into public.submissions (checkpoint_id, user_id, submission_type, file_path)"
            " values (%s, %s, 'file', %s)",
            [checkpoint, alice, f"{alice}/draft.pdf"],
        )
