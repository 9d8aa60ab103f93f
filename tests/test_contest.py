"""The contest window (issue 14): every consequence is held for CONTEST_WINDOW_HOURS; its owner
may contest it once; a contested one waits for an operator; an uncontested one runs once after."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import pytest

from shared.auth import mint_token
from tests import factories as f
from tests.conftest import Providers
from tests.http_helpers import bearer, client
from tests.test_engine import check, consequences, overdue_goal

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTEST_WINDOW_HOURS", "24")


def _failed_goal(owner: Conn, stake: str = "30.00") -> tuple[UUID, UUID, dict[str, Any]]:
    user = f.user(owner)
    goal = f.goal(owner, user, stake=stake, checkpoints=0)
    overdue_goal(owner, goal)
    result = check()
    assert result["goals_failed"] == 1 and result["dispatched"] == 0
    [row] = consequences(owner)
    return user, goal, row


def _contest(user: UUID, consequence: UUID, reason: Any = "I submitted on time; see my upload") -> Any:
    body = {"consequence_id": str(consequence), "reason": reason}
    return client("contest_consequence").post("/", json=body, headers=bearer(mint_token(str(user))))


def _window_ends(owner: Conn) -> None:
    owner.execute("update public.consequences set execute_after = now() - interval '1 second'")


def test_an_uncontested_consequence_runs_once_after_its_window(providers: Providers, owner: Conn, window: None) -> None:
    _, _, row = _failed_goal(owner)
    assert row["execution_status"] == "held" and row["contest_status"] == "none"
    assert check()["dispatched"] == 0  # still inside the window
    assert providers.stripe.created("/v1/transfers") == []
    _window_ends(owner)
    result = check()
    assert result["released"] == 1 and result["dispatched"] == 1
    check()
    assert [int(t["amount"]) for t in providers.stripe.objects["transfer"]] == [3000]


def test_a_contested_consequence_waits_for_an_operator_however_long(
    providers: Providers, owner: Conn, window: None
) -> None:
    user, _, row = _failed_goal(owner)
    response = _contest(user, row["id"])
    assert response.status_code == 200, response.json
    assert response.json["contest_status"] == "contested" and response.json["execution_status"] == "held"
    _window_ends(owner)
    owner.execute("update public.consequences set execute_after = now() - interval '30 days'")
    for _ in range(2):
        assert check()["dispatched"] == 0
    assert providers.stripe.created("/v1/transfers") == []
    # Nor can a direct trigger run it.
    trigger = client("trigger_consequence").post(
        "/", json={"consequence_id": str(row["id"])}, headers=bearer(mint_token(None, role="service_role"))
    )
    assert trigger.status_code == 409 and providers.stripe.created("/v1/transfers") == []


def test_an_operator_cancel_releases_the_stake_and_tells_the_user(
    providers: Providers, owner: Conn, window: None
) -> None:
    user, goal, row = _failed_goal(owner)
    assert _contest(user, row["id"]).status_code == 200
    operator = f.user(owner, "operator")
    owner.execute("select app.decide_consequence(%s, %s, 'cancel', 'the upload was on time')", [row["id"], operator])
    decided = consequences(owner)[0]
    assert (decided["execution_status"], decided["contest_status"], decided["decided_by"]) == (
        "canceled",
        "overturned",
        operator,
    )
    cell = owner.execute("select available_cents, reserved_cents from public.holding_cells where user_id = %s", [user])
    assert cell.fetchone() == {"available_cents": 3000, "reserved_cents": 0}
    audit = owner.execute("select details from public.audit_log where action = 'decided_cancel'").fetchone()
    assert audit is not None and audit["details"]["operator"] == str(operator)
    check()
    assert providers.stripe.created("/v1/transfers") == []
    assert any("canceled" in providers.sendgrid.text(m).lower() for m in providers.sendgrid.mails)
    with pytest.raises(psycopg.Error, match="not waiting for a decision"):  # once
        owner.execute("select app.decide_consequence(%s, %s, 'execute', 'changed my mind')", [row["id"], operator])
    assert goal


def test_an_operator_execute_runs_it_once(providers: Providers, owner: Conn, window: None) -> None:
    user, _, row = _failed_goal(owner)
    assert _contest(user, row["id"]).status_code == 200
    operator = f.user(owner, "operator")
    owner.execute("select app.decide_consequence(%s, %s, 'execute', 'no proof was made')", [row["id"], operator])
    check()
    check()
    assert [int(t["amount"]) for t in providers.stripe.objects["transfer"]] == [3000]
    assert consequences(owner)[0]["contest_status"] == "upheld"


def test_contests_that_are_refused(providers: Providers, owner: Conn, window: None) -> None:
    user, _, row = _failed_goal(owner)
    stranger = f.user(owner, "stranger")
    cases = [
        (_contest(stranger, row["id"]), 404, "not_found"),  # another user's consequence
        (_contest(user, row["id"], ""), 400, "invalid_body"),  # an empty reason
        (_contest(user, row["id"], "   "), 400, "invalid_body"),
        (_contest(user, row["id"], "x" * 2001), 400, "invalid_body"),
        (_contest(user, UUID(int=7)), 404, "not_found"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json["error"]["code"]) == (status, code), response.json
    service = client("contest_consequence").post(
        "/",
        json={"consequence_id": str(row["id"]), "reason": "x"},
        headers=bearer(mint_token(None, role="service_role")),
    )
    assert service.status_code == 403  # a user's act, not the service's
    assert (
        client("contest_consequence").post("/", json={"consequence_id": str(row["id"]), "reason": "x"}).status_code
        == 401
    )
    assert _contest(user, row["id"]).status_code == 200
    second = _contest(user, row["id"], "and another thing")
    assert (second.status_code, second.json["error"]["code"]) == (409, "invalid_state")
    assert consequences(owner)[0]["contest_reason"] == "I submitted on time; see my upload"


def test_a_closed_window_cannot_be_contested(providers: Providers, owner: Conn, window: None) -> None:
    user, _, row = _failed_goal(owner)
    _window_ends(owner)
    late = _contest(user, row["id"])
    assert late.status_code == 409 and "window" in late.json["error"]["message"]
    assert consequences(owner)[0]["contest_status"] == "none"


def test_a_user_cannot_contest_or_decide_by_writing_the_row(providers: Providers, owner: Conn, window: None) -> None:
    from shared import db

    user, _, row = _failed_goal(owner)
    for assignment in ("contest_status = 'overturned'", "execution_status = 'canceled'", "decided_by = user_id"):
        with pytest.raises(psycopg.Error) as caught, db.as_user(user) as conn:
            conn.execute(f"update public.consequences set {assignment} where id = %s", [row["id"]])
        assert caught.value.sqlstate == "42501"
    assert consequences(owner)[0]["contest_status"] == "none"


# -----------------------------------------------------------------------------
# operator_review
# -----------------------------------------------------------------------------
def _review(token: str, body: dict[str, Any]) -> Any:
    return client("operator_review").post("/", json=body, headers=bearer(token))


def _operator(owner: Conn) -> tuple[UUID, str]:
    operator = f.user(owner, "operator")
    return operator, mint_token(str(operator), app_metadata={"role": "operator"})


def test_an_operator_lists_open_items_and_decides_a_contest_once(
    providers: Providers, owner: Conn, window: None
) -> None:
    user, _, row = _failed_goal(owner)
    assert _contest(user, row["id"], "My upload was on time").status_code == 200
    operator, token = _operator(owner)
    listed = _review(token, {"action": "list"})
    assert listed.status_code == 200
    [item] = listed.json["items"]
    assert (item["kind"], item["id"], item["why"]) == ("consequence", str(row["id"]), "contested")
    assert item["contest_reason"] == "My upload was on time"
    decided = _review(
        token,
        {"action": "decide_consequence", "consequence_id": str(row["id"]), "decision": "cancel", "reason": "on time"},
    )
    assert decided.status_code == 200 and decided.json["status"] == "canceled"
    again = _review(
        token,
        {"action": "decide_consequence", "consequence_id": str(row["id"]), "decision": "execute", "reason": "no"},
    )
    assert again.status_code == 409
    audit = owner.execute("select details from public.audit_log where action = 'decided_cancel'").fetchone()
    assert audit is not None and audit["details"]["operator"] == str(operator)
    assert _review(token, {"action": "list"}).json["items"] == []


def test_an_operator_passes_a_submission_in_review_and_its_checkpoint_completes(
    providers: Providers, owner: Conn
) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, stake="5.00", checkpoints=0)
    [final] = f.checkpoint_ids(owner, goal)
    submission = f.submission(owner, user, final, status="needs_review")
    _, token = _operator(owner)
    [item] = _review(token, {"action": "list"}).json["items"]
    assert item["kind"] == "submission" and item["rubric"] == "A full draft" and item["why"] == "grader_doubt"
    empty = _review(
        token, {"action": "decide_submission", "submission_id": str(submission), "decision": "pass", "reason": " "}
    )
    assert empty.status_code == 400  # a reason is required
    passed = _review(
        token,
        {"action": "decide_submission", "submission_id": str(submission), "decision": "pass", "reason": "it is done"},
    )
    assert passed.status_code == 200 and passed.json["status"] == "passed"
    status = owner.execute("select status::text from public.goals where id = %s", [goal]).fetchone()
    assert status == {"status": "completed"}


def test_only_operators_may_review(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    plain = mint_token(str(user))
    self_made = mint_token(str(user), app_metadata={"role": "admin"})
    for token in (plain, self_made, mint_token(None, role="service_role")):
        assert _review(token, {"action": "list"}).status_code == 403
    assert client("operator_review").post("/", json={"action": "list"}).status_code == 401
    # A user cannot make themselves an operator through anything they can write: the role is read
    # from app_metadata in the signed token, which only the service key sets; auth.users is not theirs.
    from shared import db

    with pytest.raises(psycopg.Error), db.as_user(user) as conn:
        conn.execute("update auth.users set raw_user_meta_data = '{}'::jsonb where id = %s", [user])


def test_review_items_past_the_sla_are_reported_every_pass_and_emailed_once(
    providers: Providers, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreviewed needs_review submission for 30 days: no consequence, and the SLA report names it."""
    monkeypatch.setenv("OPERATOR_EMAIL", "ops@threativator.example")
    user = f.user(owner)
    goal = f.goal(owner, user, stake="5.00", checkpoints=0)
    [final] = f.checkpoint_ids(owner, goal)
    submission = f.submission(owner, user, final, status="needs_review")
    fresh = f.submission(owner, user, final, status="needs_review")
    owner.execute(
        "update public.submissions set submitted_at = now() - interval '31 days',"
        " captured_at = now() - interval '31 days', graded_at = now() - interval '30 days' where id = %s",
        [submission],
    )
    owner.execute("update public.submissions set graded_at = now() where id = %s", [fresh])
    overdue_goal(owner, goal)
    for _ in range(2):
        result = check()
        assert [item["id"] for item in result["overdue_reviews"]] == [str(submission)]
        assert result["consequences_created"] == 0
    to_ops = [m for m in providers.sendgrid.mails if m.json["personalizations"][0]["to"][0]["email"].startswith("ops@")]
    assert len(to_ops) == 1 and str(submission) in providers.sendgrid.text(to_ops[0])
    assert owner.execute("select count(*) as n from public.consequences").fetchone() == {"n": 0}


def test_an_operator_reads_nothing_of_other_users_through_rls(providers: Providers, owner: Conn, window: None) -> None:
    """The queue is read by operator_review alone, which projects what a decision needs. Through the
    database an operator is an ordinary user: their role claim opens no row and no guarded column."""
    from shared import db
    from tests.test_rls import TABLES

    user, _, row = _failed_goal(owner)
    f.kompromat(owner, user)
    assert _contest(user, row["id"]).status_code == 200
    operator, _ = _operator(owner)
    claims = {
        "sub": str(operator),
        "role": "authenticated",
        "aud": "authenticated",
        "app_metadata": {"role": "operator"},
    }
    seen: dict[str, int] = {}
    for table in TABLES:
        try:
            with db.as_role("authenticated", claims) as conn:
                found = conn.execute(f"select count(*) as n from public.{table}").fetchone()
                seen[table] = found["n"] if found else 0
        except psycopg.errors.InsufficientPrivilege:
            seen[table] = 0
    assert seen["users"] == 1  # their own row
    assert {table: n for table, n in seen.items() if table != "users"} == dict.fromkeys(
        [t for t in TABLES if t != "users"], 0
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_role("authenticated", claims) as conn:
        conn.execute("update public.consequences set contest_status = 'overturned' where id = %s", [row["id"]])
    assert consequences(owner)[0]["contest_status"] == "contested"


# -----------------------------------------------------------------------------
# Nobody decides their own case
# -----------------------------------------------------------------------------
def _own_case_audits(owner: Conn, operator: UUID) -> int:
    row = owner.execute(
        "select count(*) as n from public.audit_log where action = 'own_case_refused' and user_id = %s", [operator]
    ).fetchone()
    return int(row["n"]) if row else 0


def test_an_operator_cannot_cancel_their_own_contested_consequence(
    providers: Providers, owner: Conn, window: None
) -> None:
    """The operator who failed a goal, contested the consequence and tries to cancel it themselves."""
    operator, _, row = _failed_goal(owner)
    assert _contest(operator, row["id"], "I was on time, honestly").status_code == 200
    token = mint_token(str(operator), app_metadata={"role": "operator"})
    body = {"action": "decide_consequence", "consequence_id": str(row["id"]), "decision": "cancel", "reason": "mine"}
    refused = _review(token, body)
    assert refused.status_code == 403 and refused.json["error"]["message"] == "an operator cannot decide their own case"
    still = owner.execute("select execution_status::text, contest_status::text from public.consequences").fetchone()
    assert still == {"execution_status": "held", "contest_status": "contested"}
    assert _own_case_audits(owner, operator) == 1
    # Another operator decides it.
    _, other = _operator(owner)
    assert _review(other, {**body, "reason": "looked at the upload"}).status_code == 200


def test_an_operator_cannot_pass_their_own_submission_or_resolve_their_own_money_item(
    providers: Providers, owner: Conn
) -> None:
    operator = f.user(owner, "self-reviewer")
    token = mint_token(str(operator), app_metadata={"role": "operator"})
    goal = f.goal(owner, operator, stake="5.00", checkpoints=0)
    [final] = f.checkpoint_ids(owner, goal)
    submission = f.submission(owner, operator, final, status="needs_review")
    passed = _review(
        token, {"action": "decide_submission", "submission_id": str(submission), "decision": "pass", "reason": "fine"}
    )
    assert passed.status_code == 403
    status = owner.execute("select status::text from public.submissions where id = %s", [submission]).fetchone()
    assert status == {"status": "needs_review"}
    item = owner.execute(
        "insert into public.money_items (kind, source_id, cents, user_id)"
        " values ('refund_refused', 'own-case', 500, %s) returning id",
        [operator],
    ).fetchone()
    assert item is not None
    resolved = _review(token, {"action": "resolve_money", "money_item_id": str(item["id"]), "reason": "paid myself"})
    assert resolved.status_code == 403
    assert owner.execute("select resolved_at from public.money_items where id = %s", [item["id"]]).fetchone() == {
        "resolved_at": None
    }
    assert _own_case_audits(owner, operator) == 2


def test_the_queue_lists_an_operators_own_cases_apart(providers: Providers, owner: Conn) -> None:
    """Each operator sees their own submissions and money items in `own_cases`, never among the items
    they may decide; another operator sees them as ordinary items. Dispute items list as such."""
    operator = f.user(owner, "self-reviewer")
    token = mint_token(str(operator), app_metadata={"role": "operator"})
    goal = f.goal(owner, operator, stake="5.00", checkpoints=0)
    [final] = f.checkpoint_ids(owner, goal)
    submission = f.submission(owner, operator, final, status="needs_review")
    owner.execute(
        "insert into public.money_items (kind, source_id, cents, user_id)"
        " values ('dispute_while_committed', 'du_own', 500, %s)",
        [operator],
    )
    stranger = f.user(owner, "stranger")
    owner.execute(
        "insert into public.money_items (kind, source_id, cents, user_id)"
        " values ('dispute_takes_owed', 'du_x', 700, %s)",
        [stranger],
    )
    mine = _review(token, {"action": "list"})
    assert mine.status_code == 200, mine.json
    assert {(i["kind"], i["why"]) for i in mine.json["items"]} == {("money", "dispute_takes_owed")}
    assert {(i["kind"], i["id"]) for i in mine.json["own_cases"]} >= {("submission", str(submission))}
    assert {i["why"] for i in mine.json["own_cases"]} >= {"dispute_while_committed"}
    _, other = _operator(owner)
    theirs = _review(other, {"action": "list"}).json
    assert len(theirs["items"]) == 3 and theirs["own_cases"] == []
