"""What a deadline costs is fixed before it can be gamed: each checkpoint's part of the stake is
recorded when the goal activates or the checkpoint is added, and only an easing change, after its
notice, lowers it. Tried as the user who wants out, through HTTP and the real database, with the
roulette set to always fire (the providers fixture). The books are checked after every test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from shared import db
from shared.config import Settings
from tests import factories as f
from tests.conftest import Providers
from tests.test_engine import check, consequences, overdue
from tests.test_goal_changes import DAY, at, cell, notice_ends, request

Conn = psycopg.Connection[dict[str, Any]]


def parts(owner: Conn, goal: UUID) -> list[int | None]:
    rows = owner.execute(
        "select stake_cents from public.checkpoints where goal_id = %s order by order_position", [goal]
    ).fetchall()
    return [r["stake_cents"] for r in rows]


def draft(owner: Conn, user: UUID, *, stake: str, deadlines: list[timedelta], days: int = 30) -> UUID:
    goal = f.goal(owner, user, days=days, stake=stake, checkpoints=0, activate=False)
    for position, delta in enumerate(deadlines, start=1):
        owner.execute(
            "insert into public.checkpoints (goal_id, title, deadline, order_position) values (%s, %s, %s, %s)",
            [goal, f"Checkpoint {position}", datetime.now(UTC) + delta, position],
        )
    f.fund_user(owner, user, round(float(stake) * 100))
    return goal


def test_padding_with_checkpoints_before_a_cancellation_still_costs_the_missed_deadline_its_half(
    providers: Providers, owner: Conn
) -> None:
    """$100, C1 due in 2 days, the final in 30. The user pads the goal with checkpoints from day 8
    on (tightening: each applies at once), asks to cancel, and misses C1: it costs $50.00, as it did
    when the goal was activated, not $100 / (checkpoints + 1)."""
    alice = f.user(owner, "alice")
    goal = draft(owner, alice, stake="100.00", deadlines=[2 * DAY])
    owner.execute("select app.activate_goal(%s)", [goal])
    assert parts(owner, goal) == [5000, 5000]

    answers = [
        request(alice, goal, type="add_checkpoint", title=f"Pad {n}", deadline=at(8 * DAY + n * timedelta(hours=5)))
        for n in range(99)
    ]
    applied = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    limit = Settings.model_fields["max_checkpoints_per_goal"].default
    assert len(applied) == limit - 1  # C1 plus the padding reach the limit
    assert {(a.status_code, a.json["error"]["code"]) for a in refused} == {(409, "invalid_state")}
    assert f"{limit} checkpoints" in refused[0].json["error"]["message"]
    first = parts(owner, goal)
    assert first[0] == 5000  # C1's part never moved
    assert sum(p or 0 for p in first) == 10000  # the padding came out of the final deadline's part
    assert first[-1] == 0  # ...until it had nothing left

    assert request(alice, goal, type="cancel_goal").json["status"] == "pending"
    c1 = f.checkpoint_ids(owner, goal)[0]
    overdue(owner, c1)
    check()
    owed = [(c["consequence_type"], str(c["monetary_amount"])) for c in consequences(owner)]
    assert owed == [("monetary", "50.00")]
    assert [t["amount"] for t in providers.stripe.objects["transfer"]] == [5000]  # no contest window here

    notice_ends(owner)
    check()  # the cancellation applies: only the other half goes back
    assert cell(owner, alice) == {"available_cents": 5000, "reserved_cents": 0}
    assert [t["amount"] for t in providers.stripe.objects["transfer"]] == [5000]


def test_a_goal_with_the_most_checkpoints_still_sums_to_its_stake_exactly(providers: Providers, owner: Conn) -> None:
    limit = Settings.model_fields["max_checkpoints_per_goal"].default
    alice = f.user(owner, "alice")
    goal = draft(owner, alice, stake="100.01", deadlines=[DAY + n * timedelta(hours=6) for n in range(limit)])
    owner.execute("select app.activate_goal(%s)", [goal])
    split = parts(owner, goal)
    assert len(split) == limit + 1 and sum(p or 0 for p in split) == 10001
    assert set(split[:-1]) == {10001 // (limit + 1)} and split[-1] == 10001 - limit * (10001 // (limit + 1))

    # One more is refused, at activation as through change_goal.
    over = draft(owner, alice, stake="10.00", deadlines=[DAY + n * timedelta(hours=6) for n in range(limit + 1)])
    with pytest.raises(psycopg.errors.CheckViolation, match=f"at most {limit} checkpoints"):
        owner.execute("select app.activate_goal(%s, %s)", [over, limit])
    assert request(alice, goal, type="add_checkpoint", title="One more", deadline=at(29 * DAY)).status_code == 409


def test_what_a_checkpoint_puts_at_stake_moves_only_as_the_rules_say(
    providers: Providers, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = f.user(owner, "alice")
    goal = f.goal(owner, alice, days=30, stake="90.00", checkpoints=2)
    assert parts(owner, goal) == [3000, 3000, 3000]
    # An added checkpoint takes an even share out of the final deadline's part.
    assert request(alice, goal, type="add_checkpoint", title="Outline", deadline=at(2 * DAY)).status_code == 200
    assert parts(owner, goal) == [2250, 3000, 3000, 750]
    # A raised stake adds to the final deadline's part.
    f.fund_user(owner, alice, 1000)
    assert request(alice, goal, type="raise_stake", new_amount_cents=10000).status_code == 200
    assert parts(owner, goal) == [2250, 3000, 3000, 1750]
    # A removed checkpoint's part returns to the final deadline's, after the notice.
    second = f.checkpoint_ids(owner, goal)[2]
    assert request(alice, goal, type="remove_checkpoint", checkpoint_id=str(second)).status_code == 200
    assert parts(owner, goal) == [2250, 3000, 3000, 1750]  # still waiting
    notice_ends(owner)
    check()
    assert parts(owner, goal) == [2250, 3000, 4750]
    # A lower stake shrinks the parts ahead in proportion.
    assert request(alice, goal, type="lower_stake", new_amount_cents=5000).status_code == 200
    notice_ends(owner)
    check()
    assert parts(owner, goal) == [1125, 1500, 2375]
    assert sum(parts(owner, goal)) == 5000  # type: ignore[arg-type]


def test_a_user_cannot_set_what_a_checkpoint_puts_at_stake(providers: Providers, owner: Conn) -> None:
    alice = f.user(owner, "alice")
    goal = f.goal(owner, alice, days=30, stake="90.00", checkpoints=2)
    first = f.checkpoint_ids(owner, goal)[0]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="fixed by the service"), db.as_user(alice) as conn:
        conn.execute("update public.checkpoints set stake_cents = 0 where id = %s", [first])
    drafted = f.goal(owner, alice, checkpoints=0, activate=False)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(alice) as conn:
        conn.execute(
            "insert into public.checkpoints (goal_id, title, deadline, order_position, stake_cents)"
            " values (%s, 'Mine', now() + interval '2 days', 1, 1)",
            [drafted],
        )
    assert parts(owner, goal) == [3000, 3000, 3000]


def test_the_sql_default_limit_is_the_setting(owner: Conn) -> None:
    """Callers that pass no limit get the setting's default: the two never drift apart."""
    rows = owner.execute(
        "select pg_get_function_arguments(p.oid) as args from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'app' and p.proname in ('activate_goal', 'request_goal_change')"
    ).fetchall()
    default = Settings.model_fields["max_checkpoints_per_goal"].default
    assert len(rows) == 2
    assert all(f"p_max_checkpoints integer DEFAULT {default}" in r["args"] for r in rows)


# -----------------------------------------------------------------------------
# Activation: the owner commits through change_goal
# -----------------------------------------------------------------------------
def activate(user: UUID, goal: UUID) -> Any:
    from shared.auth import mint_token
    from tests.http_helpers import bearer, client

    return client("change_goal").post(
        "/", json={"action": "activate", "goal_id": str(goal)}, headers=bearer(mint_token(str(user)))
    )


def test_the_owner_activates_a_draft_and_its_parts_are_fixed(providers: Providers, owner: Conn) -> None:
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    goal = draft(owner, alice, stake="30.00", deadlines=[5 * DAY, 10 * DAY])
    # Another user's draft and an unknown id are the same 404, and change nothing.
    assert activate(bob, goal).status_code == 404
    assert activate(alice, UUID(int=5)).json == activate(bob, goal).json
    answer = activate(alice, goal)
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "active" and answer.json["stake_cents"] == 3000
    assert [c["stake_cents"] for c in answer.json["checkpoints"]] == [1000, 1000, 1000]
    assert [c["is_final"] for c in answer.json["checkpoints"]] == [False, False, True]
    assert cell(owner, alice) == {"available_cents": 0, "reserved_cents": 3000}
    again = activate(alice, goal)
    assert again.status_code == 409 and "only a draft goal can be activated" in again.json["error"]["message"]


def test_activation_is_refused_without_the_stake_or_past_the_limit(providers: Providers, owner: Conn) -> None:
    alice = f.user(owner, "alice")
    goal = f.goal(owner, alice, stake="50.00", checkpoints=1, activate=False)  # nothing deposited
    short = activate(alice, goal)
    assert short.status_code == 400 and "deposit more before activating" in short.json["error"]["message"]
    limit = Settings.model_fields["max_checkpoints_per_goal"].default
    many = draft(owner, alice, stake="1.00", deadlines=[DAY + n * timedelta(hours=2) for n in range(limit + 1)])
    refused = activate(alice, many)
    assert refused.status_code == 400 and f"at most {limit} checkpoints" in refused.json["error"]["message"]
    status = owner.execute("select status::text from public.goals where id in (%s, %s)", [goal, many]).fetchall()
    assert [r["status"] for r in status] == ["draft", "draft"]  # nothing half-done
    assert cell(owner, alice)["reserved_cents"] == 0


def test_a_leaving_account_activates_nothing(providers: Providers, owner: Conn) -> None:
    alice = f.user(owner, "alice")
    goal = draft(owner, alice, stake="10.00", deadlines=[5 * DAY])
    owner.execute("update public.users set leaving_requested_at = now() where id = %s", [alice])
    refused = activate(alice, goal)
    assert refused.status_code == 409 and "leaving" in refused.json["error"]["message"]
