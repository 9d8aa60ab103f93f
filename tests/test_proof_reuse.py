"""Proof made for this checkpoint (issue 20, exact reuse so far): the same captured bytes seen
before, for another checkpoint or from another user, go to a person, never to the model, and never
fail anyone on their own."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from shared.auth import mint_token
from tests import factories as f
from tests.http_helpers import bearer, client
from tests.test_grading import FAIL, Stack, as_user, file_submission, grade, row
from tests.test_grading import stack as stack
from tests.test_sealing import PNG

Conn = psycopg.Connection[dict[str, Any]]


def _second_checkpoint_submission(owner: Conn, stack: Stack, user: UUID, content: bytes, path: str) -> UUID:
    return file_submission(owner, stack, user, content, path=path)


def test_the_same_file_for_a_second_checkpoint_goes_to_a_person_and_the_model_never_sees_it(
    stack: Stack,
    owner: Conn,
) -> None:
    alice = f.user(owner, "alice")
    first = file_submission(owner, stack, alice, PNG, path="c/1.png")
    assert grade(first, as_user(alice)).json["status"] == "passed"
    assert len(stack.gemini.calls) == 1
    again = _second_checkpoint_submission(owner, stack, alice, PNG, "c/2.png")
    answer = grade(again, as_user(alice))
    assert answer.status_code == 200 and answer.json["status"] == "needs_review"
    assert answer.json["result"]["reused_submission_id"] == str(first)
    assert len(stack.gemini.calls) == 1  # never sent to the model
    assert row(owner, again)["checkpoint"] == "pending"  # protected, not failed
    assert "a person will look" in stack.sendgrid.text(stack.sendgrid.mails[-1])
    # The operators see both proofs side by side.
    operator = mint_token(str(f.user(owner, "operator")), app_metadata={"role": "operator"})
    [item] = client("operator_review").post("/", json={"action": "list"}, headers=bearer(operator)).json["items"]
    assert (item["id"], item["why"]) == (str(again), "reused_proof")
    assert item["earlier_proof"]["submission_id"] == str(first) and item["earlier_proof"]["same_user"] is True


def test_another_users_identical_file_goes_to_a_person(stack: Stack, owner: Conn) -> None:
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    theirs = file_submission(owner, stack, alice, PNG, path="a.png")
    assert grade(theirs, as_user(alice)).json["status"] == "passed"
    copied = file_submission(owner, stack, bob, PNG, path="a.png")
    assert grade(copied, as_user(bob)).json["status"] == "needs_review"
    assert len(stack.gemini.calls) == 1


def test_fresh_proof_and_a_resubmission_for_the_same_checkpoint_are_graded_as_usual(
    stack: Stack,
    owner: Conn,
) -> None:
    alice = f.user(owner, "alice")
    first = file_submission(owner, stack, alice, PNG, path="f/1.png")
    assert grade(first, as_user(alice)).json["status"] == "passed"
    fresh = file_submission(owner, stack, alice, PNG + b"a new chapter", path="f/2.png")
    stack.gemini.script = [FAIL]
    assert grade(fresh, as_user(alice)).json["status"] == "failed"
    # The same file again for the same checkpoint (after a failed grade) is no reuse.
    checkpoint = owner.execute("select checkpoint_id from public.submissions where id = %s", [fresh]).fetchone()
    assert checkpoint is not None
    resubmitted = owner.execute(
        "insert into public.submissions (checkpoint_id, user_id, submission_type, file_path)"
        " values (%s, %s, 'file', %s) returning id",
        [checkpoint["checkpoint_id"], alice, f"{alice}/f/2.png"],
    ).fetchone()
    assert resubmitted is not None
    assert grade(resubmitted["id"], as_user(alice)).json["status"] == "passed"
    assert len(stack.gemini.calls) == 3
