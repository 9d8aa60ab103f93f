"""change_goal (issue 15): easing a commitment takes the notice period (CHANGE_NOTICE_DAYS, 7 by
default) and never touches a deadline inside it; tightening it takes effect at once. Through HTTP
and the real database, with the scheduler's pass applying what is due."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from shared import db
from shared.auth import mint_token
from shared.commitments import deadlines
from tests import factories as f
from tests.conftest import Providers
from tests.http_helpers import bearer, client
from tests.test_engine import check, consequences, overdue

Conn = psycopg.Connection[dict[str, Any]]
DAY = timedelta(days=1)


def change(user: UUID, body: dict[str, Any]) -> Any:
    return client("change_goal").post("/", json=body, headers=bearer(mint_token(str(user))))


def request(user: UUID, goal: UUID, **change_fields: Any) -> Any:
    return change(user, {"action": "request", "goal_id": str(goal), "change": change_fields})


def at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def deadlines_of(owner: Conn, goal: UUID) -> list[datetime]:
    rows = owner.execute(
        "select deadline from public.checkpoints where goal_id = %s order by order_position", [goal]
    ).fetchall()
    return [r["deadline"] for r in rows]


def notice_ends(owner: Conn) -> None:
    """The notice period runs out (the clock, wound forward for the pending requests)."""
    owner.execute(
        "update public.goal_change_requests set requested_at = requested_at - interval '8 days',"
        " effective_at = now() - interval '1 second' where status = 'pending'"
    )


def cell(owner: Conn, user: UUID) -> dict[str, int]:
    row = owner.execute(
        "select available_cents, reserved_cents from public.holding_cells where user_id = %s", [user]
    ).fetchone()
    return dict(row) if row else {}


@pytest.fixture
def alice(owner: Conn) -> UUID:
    return f.user(owner, "alice")


# -----------------------------------------------------------------------------
# Easing: after the notice period
# -----------------------------------------------------------------------------
def test_a_pause_waits_out_its_notice_then_moves_every_deadline_from_its_start(
    providers: Providers, owner: Conn, alice: UUID
) -> None:
    goal = f.goal(owner, alice, days=30)  # checkpoints at +10 and +20 days, final at +30
    before = deadlines_of(owner, goal)
    start = datetime.now(UTC) + 8 * DAY
    asked = request(alice, goal, type="pause", **{"from": start.isoformat(), "until": (start + 4 * DAY).isoformat()})
    assert asked.status_code == 200, asked.json
    assert asked.json["status"] == "pending"
    effective = datetime.fromisoformat(asked.json["effective_at"])
    assert timedelta(days=7) - timedelta(seconds=5) < effective - datetime.now(UTC) <= timedelta(days=7)
    assert check()["goal_changes"] == 0 and deadlines_of(owner, goal) == before  # nothing moves before notice
    notice_ends(owner)
    assert check()["goal_changes"] == 1
    assert deadlines_of(owner, goal) == [d + 4 * DAY for d in before]
    final = owner.execute("select final_deadline from public.goals where id = %s", [goal]).fetchone()
    assert final == {"final_deadline": before[-1] + 4 * DAY}
    listed = change(alice, {"action": "list", "goal_id": str(goal)}).json
    assert [(r["type"], r["status"]) for r in listed["requests"]] == [("pause", "applied")]
    assert listed["requests"][0]["outcome"]["deadlines_moved"] == 3
    subjects = [m.json["subject"] for m in providers.sendgrid.mails]
    assert subjects.count("Change requested: Write the book") == 1
    assert subjects.count("Change in effect: Write the book") == 1


def test_the_horizon_boundary_to_the_minute(providers: Providers, owner: Conn, alice: UUID) -> None:
    goal = f.goal(owner, alice, days=30, checkpoints=1)
    [checkpoint, _] = f.checkpoint_ids(owner, goal)
    owner.execute(
        "update public.checkpoints set deadline = now() + interval '7 days' - interval '1 minute' where id = %s",
        [checkpoint],
    )
    inside = request(alice, goal, type="extend_deadline", checkpoint_id=str(checkpoint), new_deadline=at(9 * DAY))
    assert inside.status_code == 409
    assert "Checkpoint 1" in inside.json["error"]["message"] and "stays due" in inside.json["error"]["message"]
    early = request(alice, goal, type="pause", **{"from": at(7 * DAY - timedelta(minutes=1)), "until": at(9 * DAY)})
    assert early.status_code == 409 and "at the earliest" in early.json["error"]["message"]
    owner.execute(
        "update public.checkpoints set deadline = now() + interval '7 days' + interval '1 minute' where id = %s",
        [checkpoint],
    )
    outside = request(alice, goal, type="extend_deadline", checkpoint_id=str(checkpoint), new_deadline=at(9 * DAY))
    assert outside.status_code == 200, outside.json


def test_easing_refused_for_whatever_falls_inside_the_horizon(providers: Providers, owner: Conn, alice: UUID) -> None:
    """What is due within the notice period stays due: each easing that could only touch it is 409."""
    goal = f.goal(owner, alice, days=6, checkpoints=1)  # every deadline within the week
    [checkpoint, final] = f.checkpoint_ids(owner, goal)
    refused = [
        request(alice, goal, type="extend_deadline", checkpoint_id=str(final), new_deadline=at(20 * DAY)),
        request(alice, goal, type="remove_checkpoint", checkpoint_id=str(checkpoint)),
        request(alice, goal, type="cancel_goal"),
        request(alice, goal, type="lower_stake", new_amount_cents=0),
        request(alice, goal, type="pause", **{"from": at(DAY), "until": at(20 * DAY)}),
    ]
    assert [r.status_code for r in refused] == [409] * 5
    assert all("due" in r.json["error"]["message"] for r in refused)
    assert owner.execute("select count(*) as n from public.goal_change_requests").fetchone() == {"n": 0}
    # And nothing here writes the goal directly: the guards keep an active goal closed to its owner.
    with pytest.raises(psycopg.Error) as caught, db.as_user(alice) as conn:
        conn.execute("update public.checkpoints set deadline = deadline + interval '30 days' where id = %s", [final])
    assert caught.value.sqlstate == "42501"
    with pytest.raises(psycopg.Error), db.as_user(alice) as conn:
        conn.execute(
            "insert into public.goal_change_requests (goal_id, user_id, change_type, change, effective_at, status)"
            " values (%s, %s, 'cancel_goal', '{}', now(), 'applied')",
            [goal, alice],
        )


def test_extend_and_remove_apply_after_notice_and_keep_the_order(
    providers: Providers, owner: Conn, alice: UUID
) -> None:
    goal = f.goal(owner, alice, days=30, checkpoints=2)
    first, second, final = f.checkpoint_ids(owner, goal)
    out_of_order = request(alice, goal, type="extend_deadline", checkpoint_id=str(first), new_deadline=at(25 * DAY))
    assert out_of_order.status_code == 400
    final_removed = request(alice, goal, type="remove_checkpoint", checkpoint_id=str(final))
    assert final_removed.status_code == 400
    assert request(alice, goal, type="remove_checkpoint", checkpoint_id=str(second)).status_code == 200
    notice_ends(owner)
    check()
    assert f.checkpoint_ids(owner, goal) == [first, final]
    asked = request(alice, goal, type="extend_deadline", checkpoint_id=str(final), new_deadline=at(40 * DAY))
    assert asked.status_code == 200
    notice_ends(owner)
    check()
    row = owner.execute("select final_deadline from public.goals where id = %s", [goal]).fetchone()
    assert row is not None and row["final_deadline"] - datetime.now(UTC) > 39 * DAY
    assert deadlines_of(owner, goal)[-1] == row["final_deadline"]


def test_a_lower_stake_never_releases_what_a_consequence_is_owed(
    providers: Providers, owner: Conn, alice: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTEST_WINDOW_HOURS", "24")  # the share stays owed, held, while the stake is lowered
    goal = f.goal(owner, alice, days=30, stake="30.00", checkpoints=2)  # shares of 10.00
    first = f.checkpoint_ids(owner, goal)[0]
    assert request(alice, goal, type="lower_stake", new_amount_cents=0).status_code == 200
    # Inside the notice period the first checkpoint is missed: its share is owed at the old stake.
    overdue(owner, first)
    check()
    assert [(c["consequence_type"], str(c["monetary_amount"])) for c in consequences(owner)] == [("monetary", "10.00")]
    notice_ends(owner)
    check()
    stake = owner.execute("select monetary_stake from public.goals where id = %s", [goal]).fetchone()
    assert stake is not None and str(stake["monetary_stake"]) == "10.00"  # raised to what is owed
    assert cell(owner, alice) == {"available_cents": 2000, "reserved_cents": 1000}
    owner.execute("update public.consequences set execute_after = now() - interval '1 second'")
    check()
    assert [t["amount"] for t in providers.stripe.objects["transfer"]] == [1000]


def test_a_cancelled_goal_releases_its_stake_when_the_cancellation_takes_effect(
    providers: Providers, owner: Conn, alice: UUID
) -> None:
    goal = f.goal(owner, alice, days=30, stake="30.00")
    asked = request(alice, goal, type="cancel_goal")
    assert asked.status_code == 200
    withdrawn = change(alice, {"action": "cancel_request", "request_id": asked.json["id"]})
    assert withdrawn.status_code == 200 and withdrawn.json["status"] == "canceled"
    assert change(alice, {"action": "cancel_request", "request_id": asked.json["id"]}).status_code == 409
    bob = f.user(owner, "bob")
    assert change(bob, {"action": "cancel_request", "request_id": asked.json["id"]}).status_code == 404
    assert change(bob, {"action": "list", "goal_id": str(goal)}).status_code == 404
    assert request(bob, goal, type="cancel_goal").status_code == 404
    assert request(alice, goal, type="cancel_goal").status_code == 200
    assert cell(owner, alice) == {"available_cents": 0, "reserved_cents": 3000}
    notice_ends(owner)
    check()
    status = owner.execute("select status::text from public.goals where id = %s", [goal]).fetchone()
    assert status == {"status": "canceled"}
    assert cell(owner, alice) == {"available_cents": 3000, "reserved_cents": 0}
    owner.execute("update public.checkpoints set deadline = now() - interval '1 minute' where goal_id = %s", [goal])
    assert check()["consequences_created"] == 0  # a cancelled goal's deadlines no longer fire


# -----------------------------------------------------------------------------
# Tightening: at once
# -----------------------------------------------------------------------------
def test_a_raised_stake_reserves_at_once_or_is_refused(providers: Providers, owner: Conn, alice: UUID) -> None:
    goal = f.goal(owner, alice, days=30, stake="30.00")
    short = request(alice, goal, type="raise_stake", new_amount_cents=4000)
    assert short.status_code == 402 and short.json["error"]["code"] == "insufficient_funds"
    assert owner.execute("select count(*) as n from public.goal_change_requests").fetchone() == {"n": 0}
    f.fund_user(owner, alice, 1000)
    raised = request(alice, goal, type="raise_stake", new_amount_cents=4000)
    assert raised.status_code == 200 and raised.json["status"] == "applied"
    assert cell(owner, alice) == {"available_cents": 0, "reserved_cents": 4000}
    stake = owner.execute("select monetary_stake from public.goals where id = %s", [goal]).fetchone()
    assert stake is not None and str(stake["monetary_stake"]) == "40.00"
    assert request(alice, goal, type="raise_stake", new_amount_cents=4000).status_code == 400  # not a raise


def test_an_added_checkpoint_and_an_earlier_deadline_take_effect_at_once(
    providers: Providers, owner: Conn, alice: UUID
) -> None:
    goal = f.goal(owner, alice, days=30, checkpoints=1)  # checkpoint at +15 days
    added = request(alice, goal, type="add_checkpoint", title="Outline", deadline=at(2 * DAY))
    assert added.status_code == 200 and added.json["status"] == "applied"
    titles = owner.execute(
        "select title, order_position from public.checkpoints where goal_id = %s order by order_position", [goal]
    ).fetchall()
    assert [t["title"] for t in titles] == ["Outline", "Checkpoint 1", "Final deadline"]
    late = request(alice, goal, type="add_checkpoint", title="After", deadline=at(31 * DAY))
    assert late.status_code == 400
    first = f.checkpoint_ids(owner, goal)[1]
    earlier = request(alice, goal, type="earlier_deadline", checkpoint_id=str(first), new_deadline=at(3 * DAY))
    assert earlier.status_code == 200
    assert deadlines_of(owner, goal)[1] - datetime.now(UTC) < 3 * DAY + timedelta(seconds=5)
    before_outline = request(alice, goal, type="earlier_deadline", checkpoint_id=str(first), new_deadline=at(DAY))
    assert before_outline.status_code == 400  # out of order


# -----------------------------------------------------------------------------
# Concurrency and races
# -----------------------------------------------------------------------------
def test_concurrent_easing_requests_leave_exactly_one_waiting(providers: Providers, owner: Conn, alice: UUID) -> None:
    goal = f.goal(owner, alice, days=30)
    bodies = [
        {"type": "pause", "from": at(8 * DAY), "until": at(9 * DAY)},
        {"type": "lower_stake", "new_amount_cents": 100},
        {"type": "cancel_goal"},
        {"type": "pause", "from": at(10 * DAY), "until": at(11 * DAY)},
    ]
    answers: list[int] = []
    barrier = threading.Barrier(len(bodies))

    def ask(body: dict[str, Any]) -> None:
        barrier.wait()
        answers.append(request(alice, goal, **body).status_code)

    threads = [threading.Thread(target=ask, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 409, 409, 409]
    pending = owner.execute("select count(*) as n from public.goal_change_requests where status = 'pending'")
    assert pending.fetchone() == {"n": 1}


def test_a_change_racing_detection_never_both_moves_a_deadline_and_charges_for_it(
    providers: Providers, owner: Conn, alice: UUID
) -> None:
    """Each round: an extension due now of a checkpoint due now. Whichever takes the goal first
    decides; never a moved deadline and a consequence for the old one."""
    outcomes = []
    for _ in range(6):
        user = f.user(owner, f"racer{uuid4().hex[:6]}")
        goal = f.goal(owner, user, days=30, checkpoints=1, stake="3.00")
        [checkpoint, _] = f.checkpoint_ids(owner, goal)
        assert request(user, goal, type="extend_deadline", checkpoint_id=str(checkpoint), new_deadline=at(20 * DAY))
        owner.execute(
            "update public.checkpoints set deadline = now() + interval '150 milliseconds' where id = %s", [checkpoint]
        )
        notice_ends(owner)
        barrier = threading.Barrier(2)

        def apply(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            with db.as_service() as conn:
                conn.execute("select app.apply_due_goal_changes(10)")

        def detect(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            result = deadlines.CheckResult()
            deadlines.detect(result, deadline=0)

        threads = [threading.Thread(target=apply), threading.Thread(target=detect)]
        time.sleep(0.15)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadlines.detect(deadlines.CheckResult(), deadline=0)  # whatever the race left due
        cp = owner.execute("select status::text, deadline from public.checkpoints where id = %s", [checkpoint])
        row = cp.fetchone()
        assert row is not None
        moved = row["deadline"] - datetime.now(UTC) > 10 * DAY
        charged = owner.execute(
            "select count(*) as n from public.roulette_rolls where checkpoint_id = %s", [checkpoint]
        ).fetchone()
        assert charged is not None
        assert not (moved and charged["n"] > 0)
        assert moved == (row["status"] == "pending")
        outcomes.append(moved)
    assert len(outcomes) == 6


def test_a_pause_never_protects_a_deadline_that_passed_before_it_took_effect(
    providers: Providers, owner: Conn, alice: UUID
) -> None:
    goal = f.goal(owner, alice, days=30, checkpoints=2, stake="30.00")
    first, second, _ = f.checkpoint_ids(owner, goal)
    start = datetime.now(UTC) + 8 * DAY
    asked = request(alice, goal, type="pause", **{"from": start.isoformat(), "until": (start + 4 * DAY).isoformat()})
    assert asked.status_code == 200
    # The scheduler comes late: the pause's start is behind us, and the first checkpoint passed
    # (unseen) before the pause took effect.
    owner.execute(
        "update public.goal_change_requests set change = jsonb_build_object('from', now() - interval '2 days',"
        " 'until', now() + interval '2 days'), effective_at = now() - interval '3 days',"
        " requested_at = now() - interval '10 days'"
    )
    # It fell an hour before the pause took effect (a deadline after that follows the pause: see
    # test_a_deadline_that_fell_after_a_change_took_effect_follows_the_change).
    owner.execute("update public.checkpoints set deadline = now() - interval '3 days 1 hour' where id = %s", [first])
    before = deadlines_of(owner, goal)
    result = check()
    assert result["goal_changes"] == 1 and result["checkpoints_missed"] == 1
    after = deadlines_of(owner, goal)
    assert after[0] == before[0]  # the passed deadline did not move, and was missed
    assert after[1] == before[1] + 4 * DAY and after[2] == before[2] + 4 * DAY
    status = owner.execute("select status::text from public.checkpoints where id = %s", [first]).fetchone()
    assert status == {"status": "missed"}
    assert second in f.checkpoint_ids(owner, goal)


# -----------------------------------------------------------------------------
# Time decides: a deadline one minute either side of a change's effective time, one pass after both
# -----------------------------------------------------------------------------
EASING = ["pause", "extend_deadline", "remove_checkpoint", "lower_stake", "cancel_goal"]


def timed_change(owner: Conn, user: UUID, kind: str, side: str) -> tuple[UUID, UUID]:
    """A $90 goal (checkpoints at +10 and +20 days, final at +30) and a `kind` request about its first
    checkpoint; then the clock is wound so the change took effect ten minutes ago and that checkpoint
    fell one minute before it ("before") or one minute after it ("after"). Nothing has run since."""
    goal = f.goal(owner, user, days=30, checkpoints=2, stake="90.00")
    first = f.checkpoint_ids(owner, goal)[0]
    start = datetime.now(UTC) + 8 * DAY
    choices: dict[str, dict[str, Any]] = {
        "pause": {"from": start.isoformat(), "until": (start + 4 * DAY).isoformat()},
        "extend_deadline": {"checkpoint_id": str(first), "new_deadline": at(15 * DAY)},
        "remove_checkpoint": {"checkpoint_id": str(first)},
        "lower_stake": {"new_amount_cents": 3000},
        "cancel_goal": {},
    }
    fields = choices[kind]
    owner.execute("update public.checkpoints set deadline = now() + interval '9 days' where id = %s", [first])
    asked = request(user, goal, type=kind, **fields)
    assert asked.status_code == 200, asked.json
    owner.execute(
        "update public.goal_change_requests set effective_at = now() - interval '10 minutes',"
        " requested_at = now() - interval '7 days 10 minutes',"
        " change = case when change_type = 'pause' then jsonb_build_object("
        "   'from', now() - interval '10 minutes', 'until', now() + interval '4 days') else change end"
        " where goal_id = %s",
        [goal],
    )
    offset = "11 minutes" if side == "before" else "9 minutes"
    owner.execute(f"update public.checkpoints set deadline = now() - interval '{offset}' where id = %s", [first])
    return goal, first


@pytest.mark.parametrize("kind", EASING)
def test_a_deadline_that_fell_before_a_change_took_effect_is_judged_as_it_stood(
    providers: Providers, owner: Conn, alice: UUID, kind: str
) -> None:
    """The user who times the request so that one pass sees both: the change applies after the miss
    is judged, whatever order the pass's stages run in. The roulette always fires here."""
    goal, first = timed_change(owner, alice, kind, "before")
    result = check()
    assert result["goal_changes"] == 1 and result["checkpoints_missed"] == 1
    missed = owner.execute("select status::text from public.checkpoints where id = %s", [first]).fetchone()
    assert missed == {"status": "missed"}
    [charged] = [c for c in consequences(owner) if c["checkpoint_id"] == first]
    assert charged["consequence_type"] == "monetary"
    assert charged["monetary_amount"] == Decimal("30.00")  # a third of the stake as it stood: $90
    state = owner.execute(
        "select g.status::text as goal, r.status::text as request from public.goals g"
        " join public.goal_change_requests r on r.goal_id = g.id where g.id = %s",
        [goal],
    ).fetchone()
    expected = {
        "pause": ("active", "applied"),  # the later deadlines move; the missed one stays missed
        "extend_deadline": ("active", "lapsed"),
        "remove_checkpoint": ("active", "lapsed"),
        "lower_stake": ("active", "applied"),
        "cancel_goal": ("canceled", "applied"),
    }[kind]
    assert state is not None and (state["goal"], state["request"]) == expected
    if kind in ("lower_stake", "cancel_goal"):
        # What the consequence is owed is never released, whatever the change.
        reserved = owner.execute("select app.goal_reserved_cents(%s) as c", [goal]).fetchone()
        owed = owner.execute("select app.goal_owed_cents(%s) as c", [goal]).fetchone()
        assert reserved is not None and owed is not None and reserved["c"] >= owed["c"]


@pytest.mark.parametrize("kind", EASING)
def test_a_deadline_that_fell_after_a_change_took_effect_follows_the_change(
    providers: Providers, owner: Conn, alice: UUID, kind: str
) -> None:
    goal, first = timed_change(owner, alice, kind, "after")
    result = check()
    assert result["goal_changes"] == 1
    rows = owner.execute("select status::text, deadline from public.checkpoints where id = %s", [first]).fetchall()
    charged = [c for c in consequences(owner) if c["checkpoint_id"] == first]
    if kind == "pause":  # moved by the pause's length, still to come
        assert rows[0]["status"] == "pending" and rows[0]["deadline"] > datetime.now(UTC) + 3 * DAY
        assert charged == []
    elif kind == "extend_deadline":
        assert rows[0]["status"] == "pending" and rows[0]["deadline"] > datetime.now(UTC) + 14 * DAY
        assert charged == []
    elif kind == "remove_checkpoint":
        assert rows == [] and charged == []
    elif kind == "cancel_goal":
        assert rows[0]["status"] == "pending" and charged == []
        status = owner.execute("select status::text from public.goals where id = %s", [goal]).fetchone()
        assert status == {"status": "canceled"}
    else:  # lower_stake: the miss counts, at the lowered stake
        assert rows[0]["status"] == "missed"
        [only] = charged
        assert only["monetary_amount"] == Decimal("10.00")  # a third of $30
    assert owner.execute(
        "select count(*) as n from public.roulette_rolls where checkpoint_id = %s", [first]
    ).fetchone() == {"n": 0 if kind != "lower_stake" else 1}


def test_detection_alone_never_judges_a_deadline_a_due_change_took_effect_before(
    providers: Providers, owner: Conn, alice: UUID
) -> None:
    """Detection running first (a pass whose change stage failed, or an overlapping pass) leaves the
    deadline to the change: one minute after a due cancellation, nothing is charged."""
    goal, first = timed_change(owner, alice, "cancel_goal", "after")
    deadlines.detect(deadlines.CheckResult(), deadline=0)
    assert owner.execute("select status::text from public.checkpoints where id = %s", [first]).fetchone() == {
        "status": "pending"
    }
    assert check()["goal_changes"] == 1
    assert [c for c in consequences(owner) if c["goal_id"] == goal] == []


def test_tightening_applies_at_once_while_an_easing_request_waits(
    providers: Providers, owner: Conn, alice: UUID
) -> None:
    """The user who asked for a pause can still raise the stake or add a checkpoint at once: only
    easing requests wait, one at a time."""
    goal = f.goal(owner, alice, days=30, stake="30.00")
    start = datetime.now(UTC) + 8 * DAY
    paused = request(alice, goal, type="pause", **{"from": start.isoformat(), "until": (start + 2 * DAY).isoformat()})
    assert paused.status_code == 200 and paused.json["status"] == "pending"
    f.fund_user(owner, alice, 1000)
    raised = request(alice, goal, type="raise_stake", new_amount_cents=4000)
    assert raised.status_code == 200 and raised.json["status"] == "applied", raised.json
    added = request(alice, goal, type="add_checkpoint", title="Outline", deadline=at(2 * DAY))
    assert added.status_code == 200 and added.json["status"] == "applied", added.json
    # A second easing request still waits its turn.
    second = request(alice, goal, type="lower_stake", new_amount_cents=3500)
    assert second.status_code == 409
    statuses = owner.execute(
        "select change_type::text, status::text from public.goal_change_requests"
        " where goal_id = %s order by requested_at",
        [goal],
    ).fetchall()
    assert [(r["change_type"], r["status"]) for r in statuses] == [
        ("pause", "pending"),
        ("raise_stake", "applied"),
        ("add_checkpoint", "applied"),
    ]
