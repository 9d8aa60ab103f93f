"""RLS matrix: for every table, what an owner may do, and that another user and
anon can do nothing to someone else's rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
import pytest

from shared import db
from tests import factories as f

Conn = psycopg.Connection[dict[str, Any]]


@dataclass
class World:
    alice: UUID
    bob: UUID
    teammate: UUID
    goal: UUID
    draft_goal: UUID
    checkpoint: UUID
    draft_checkpoint: UUID
    submission: UUID
    contact: UUID
    kompromat: UUID
    spare_kompromat: UUID
    consequence: UUID

    def ids(self) -> dict[str, UUID]:
        return dict(vars(self))


@pytest.fixture
def world(owner: Conn) -> World:
    alice, bob, teammate = f.user(owner, "alice"), f.user(owner, "bob"), f.user(owner, "team")
    contact = f.contact(owner, alice)
    minor, major = f.kompromat(owner, alice, "minor"), f.kompromat(owner, alice, "major")
    goal = f.goal(owner, alice, witness=contact, minor=minor, major=major)
    draft_goal = f.goal(owner, alice, activate=False, checkpoints=1)
    checkpoint = f.checkpoint_ids(owner, goal)[0]
    submission = f.submission(owner, alice, checkpoint)
    consequence = f.consequence(owner, alice, goal, checkpoint)
    owner.execute("insert into public.team_members (goal_id, user_id) values (%s, %s)", [goal, teammate])
    owner.execute("select app.audit('goal', %s, 'test', %s)", [goal, alice])
    f.fund_user(owner, alice, 1000)
    owner.execute("select app.begin_withdrawal(%s, 500, 'rls-matrix')", [alice])
    owner.execute("select app.record_stripe_event('evt_1', 'payment_intent.succeeded', 'pi_1')")
    owner.execute("insert into public.notifications (type, user_id, dedupe_key) values ('spared', %s, 'k1')", [alice])
    owner.execute("insert into public.dev_outbox (channel, summary) values ('email', 'hello')")
    owner.execute(
        "insert into public.goal_change_requests (goal_id, user_id, change_type, change, effective_at)"
        " values (%s, %s, 'cancel_goal', '{}', now() + interval '7 days')",
        [goal, alice],
    )
    owner.execute("insert into public.contact_suppressions (user_id, mailbox) values (%s, 'gone@example.com')", [alice])
    owner.execute("insert into public.grading_requests (user_id, submission_id) values (%s, %s)", [alice, submission])
    owner.execute(
        "insert into public.proof_captures (submission_id, content, content_type, sha256)"
        " values (%s, 'page', 'text/plain', repeat('a', 64))",
        [submission],
    )
    owner.execute(
        "insert into public.roulette_rolls (checkpoint_id, goal_id, user_id, draw, odds_numerator,"
        " odds_denominator, outcome) values (%s, %s, %s, 7, 1, 3, 'hit')",
        [checkpoint, goal, alice],
    )
    owner.execute(
        "insert into public.consequence_deliveries (consequence_id, channel, recipient)"
        " values (%s, 'email', 'target@example.com')",
        [consequence],
    )
    owner.execute(
        "insert into public.x_connections (user_id, access_token_sealed, key_id, expires_at)"
        " values (%s, '\\x01', 'k2', now() + interval '1 hour')",
        [alice],
    )
    owner.execute(
        "insert into public.x_oauth_states (state_hash, user_id, code_verifier_sealed, key_id,"
        " expires_at) values ('abc', %s, '\\x01', 'k2', now() + interval '1 hour')",
        [alice],
    )
    f.user(owner, "bob-has-data")  # bob's world exists too, so empty results are not trivial
    f.goal(owner, bob)
    return World(
        alice=alice,
        bob=bob,
        teammate=teammate,
        goal=goal,
        draft_goal=draft_goal,
        checkpoint=checkpoint,
        draft_checkpoint=f.checkpoint_ids(owner, draft_goal)[0],
        submission=submission,
        contact=contact,
        kompromat=major,
        spare_kompromat=f.kompromat(owner, alice, "minor"),
        consequence=consequence,
    )


# Per table: how to read, change, delete and forge alice's rows.
TABLES: dict[str, dict[str, str]] = {
    "users": {
        "select": "select id from public.users where id = %(alice)s",
        "update": "update public.users set time_zone = 'Asia/Tokyo' where id = %(alice)s",
        "delete": "delete from public.users where id = %(alice)s",
        "insert": "insert into public.users (id, email) values (%(alice)s, 'x@example.com')",
        "snapshot": "select * from public.users where id = %(alice)s",
    },
    "goals": {
        "select": "select id from public.goals where id = %(goal)s",
        "update": "update public.goals set title = 'pwned' where id = %(draft_goal)s",
        "delete": "delete from public.goals where id = %(draft_goal)s",
        "insert": "insert into public.goals (user_id, title, final_deadline, grading_rubric,"
        " referee_type, monetary_stake, charity_destination) values (%(alice)s, 't',"
        " now() + interval '9 days', 'r', 'ai', 0, 'unicef')",
        "snapshot": "select * from public.goals where user_id = %(alice)s order by id",
    },
    "checkpoints": {
        "select": "select id from public.checkpoints where id = %(checkpoint)s",
        "update": "update public.checkpoints set title = 'pwned' where id = %(draft_checkpoint)s",
        "delete": "delete from public.checkpoints where id = %(draft_checkpoint)s",
        "insert": "insert into public.checkpoints (goal_id, title, deadline, order_position)"
        " values (%(draft_goal)s, 't', now() + interval '1 day', 99)",
        "snapshot": "select * from public.checkpoints where goal_id in (%(goal)s, %(draft_goal)s) order by id",
    },
    "submissions": {
        "select": "select id from public.submissions where id = %(submission)s",
        "update": "update public.submissions set description = 'pwned' where id = %(submission)s",
        "delete": "delete from public.submissions where id = %(submission)s",
        "insert": "insert into public.submissions (checkpoint_id, user_id, submission_type,"
        " external_url) values (%(checkpoint)s, %(alice)s, 'url', 'https://x.test')",
        "snapshot": "select * from public.submissions where user_id = %(alice)s order by id",
    },
    "kompromat": {
        "select": "select id from public.kompromat where id = %(kompromat)s",
        "update": "update public.kompromat set description = 'pwned' where id = %(spare_kompromat)s",
        "delete": "delete from public.kompromat where id = %(spare_kompromat)s",
        "insert": "insert into public.kompromat (user_id, original_filename, file_type, severity,"
        " file_path) values (%(alice)s, 'a.jpg', 'image/jpeg', 'major', 'p')",
        "snapshot": "select * from public.kompromat where user_id = %(alice)s order by id",
    },
    "contacts": {
        "select": "select id from public.contacts where id = %(contact)s",
        "update": "update public.contacts set name = 'pwned' where id = %(contact)s",
        "delete": "delete from public.contacts where id = %(contact)s",
        "insert": "insert into public.contacts (user_id, name, email, role) values"
        " (%(alice)s, 'n', 'n@example.com', '{witness}')",
        "snapshot": "select * from public.contacts where user_id = %(alice)s order by id",
    },
    "consequences": {
        "select": "select id from public.consequences where id = %(consequence)s",
        "update": "update public.consequences set monetary_amount = 0 where id = %(consequence)s",
        "delete": "delete from public.consequences where id = %(consequence)s",
        "insert": "insert into public.consequences (checkpoint_id, goal_id, user_id,"
        " consequence_type, monetary_amount, charity_destination) values"
        " (%(draft_checkpoint)s, %(goal)s, %(alice)s, 'monetary', 1, 'unicef')",
        "snapshot": "select * from public.consequences where user_id = %(alice)s order by id",
    },
    "team_members": {
        "select": "select goal_id from public.team_members where goal_id = %(goal)s",
        "update": "update public.team_members set created_at = now() where goal_id = %(goal)s",
        "delete": "delete from public.team_members where goal_id = %(goal)s",
        "insert": "insert into public.team_members (goal_id, user_id) values (%(goal)s, %(bob)s)",
        "snapshot": "select * from public.team_members order by goal_id, user_id",
    },
    "holding_cells": {
        "select": "select user_id from public.holding_cells where user_id = %(alice)s",
        "update": "update public.holding_cells set available_cents = 999999 where user_id = %(alice)s",
        "delete": "delete from public.holding_cells where user_id = %(alice)s",
        "insert": "insert into public.holding_cells (user_id, available_cents) values (%(bob)s, 999999)",
        "snapshot": "select * from public.holding_cells order by user_id",
    },
    "ledger_entries": {
        "select": "select id from public.ledger_entries where user_id = %(alice)s",
        "update": "update public.ledger_entries set amount_cents = 1 where user_id = %(alice)s",
        "delete": "delete from public.ledger_entries where user_id = %(alice)s",
        "insert": "insert into public.ledger_entries (user_id, entry_type, amount_cents, available_delta,"
        " reserved_delta, forfeited_delta, reference) values (%(alice)s, 'deposit', 999, 999, 0, 0, 'forged')",
        "snapshot": "select * from public.ledger_entries order by id",
    },
    "withdrawals": {
        "select": "select id from public.withdrawals where user_id = %(alice)s",
        "update": "update public.withdrawals set amount_cents = 1 where user_id = %(alice)s",
        "delete": "delete from public.withdrawals where user_id = %(alice)s",
        "insert": "insert into public.withdrawals (user_id, amount_cents, idempotency_key)"
        " values (%(alice)s, 5, 'forged-key')",
        "snapshot": "select * from public.withdrawals order by id",
    },
    "withdrawal_refunds": {
        "select": "select id from public.withdrawal_refunds where user_id = %(alice)s",
        "update": "update public.withdrawal_refunds set status = 'failed' where user_id = %(alice)s",
        "delete": "delete from public.withdrawal_refunds where user_id = %(alice)s",
        "insert": "insert into public.withdrawal_refunds (withdrawal_id, user_id, payment_intent_id, position,"
        " amount_cents) select id, user_id, 'pi_x', 9, 5 from public.withdrawals",
        "snapshot": "select * from public.withdrawal_refunds order by id",
    },
    "master_keys": {
        "select": "select key_id from public.master_keys",
        "update": "update public.master_keys set destroy_after = null",
        "delete": "delete from public.master_keys",
        "insert": "insert into public.master_keys (key_id) values ('forged')",
        "snapshot": "select * from public.master_keys order by key_id",
    },
    "erasure_log": {
        "select": "select tombstone_id from public.erasure_log",
        "update": "update public.erasure_log set exported_at = null",
        "delete": "delete from public.erasure_log",
        "insert": "insert into public.erasure_log (tombstone_id) values (gen_random_uuid())",
        "snapshot": "select * from public.erasure_log order by tombstone_id",
    },
    "stripe_events": {
        "select": "select id from public.stripe_events",
        "update": "update public.stripe_events set type = 'x'",
        "delete": "delete from public.stripe_events",
        "insert": "insert into public.stripe_events (id, type) values ('evt_forged', 'x')",
        "snapshot": "select * from public.stripe_events order by id",
    },
    "user_data_keys": {
        "select": "select user_id from public.user_data_keys",
        "update": "update public.user_data_keys set key_id = 'x'",
        "delete": "delete from public.user_data_keys",
        "insert": "insert into public.user_data_keys (user_id, key_id, wrapped)"
        " values (%(alice)s, 'k', decode(repeat('00', 40), 'hex'))",
        "snapshot": "select * from public.user_data_keys order by user_id",
    },
    "goal_change_requests": {
        "select": "select id from public.goal_change_requests where user_id = %(alice)s",
        "update": "update public.goal_change_requests set status = 'applied' where user_id = %(alice)s",
        "delete": "delete from public.goal_change_requests where user_id = %(alice)s",
        "insert": "insert into public.goal_change_requests (goal_id, user_id, change_type, change, effective_at)"
        " values (%(goal)s, %(alice)s, 'pause', '{}', now())",
        "snapshot": "select * from public.goal_change_requests order by id",
    },
    "stripe_movements": {
        "select": "select id from public.stripe_movements",
        "update": "update public.stripe_movements set amount_cents = 0",
        "delete": "delete from public.stripe_movements",
        "insert": "insert into public.stripe_movements (reference, kind, amount_cents) values ('forged', 'x', 1)",
        "snapshot": "select * from public.stripe_movements order by id",
    },
    "platform_entries": {
        "select": "select id from public.platform_entries",
        "update": "update public.platform_entries set amount_cents = 1",
        "delete": "delete from public.platform_entries",
        "insert": "insert into public.platform_entries (account, amount_cents, reference, reason)"
        " values ('platform_losses', 1, 'forged', 'x')",
        "snapshot": "select * from public.platform_entries order by id",
    },
    "proof_matches": {
        "select": "select submission_id from public.proof_matches",
        "update": "update public.proof_matches set check_name = 'near_reuse'",
        "delete": "delete from public.proof_matches",
        "insert": "insert into public.proof_matches (submission_id, check_name)"
        " select id, 'exact_reuse' from public.submissions limit 1",
        "snapshot": "select * from public.proof_matches order by submission_id",
    },
    "disputes": {
        "select": "select id from public.disputes",
        "update": "update public.disputes set status = 'won'",
        "delete": "delete from public.disputes",
        "insert": "insert into public.disputes (id, payment_intent_id, amount_cents) values ('du_forged', 'pi_x', 1)",
        "snapshot": "select * from public.disputes order by id",
    },
    "money_items": {
        "select": "select id from public.money_items",
        "update": "update public.money_items set resolved_at = now(), resolution = 'x'",
        "delete": "delete from public.money_items",
        "insert": "insert into public.money_items (kind, source_id) values ('platform_loss', 'forged')",
        "snapshot": "select * from public.money_items order by id",
    },
    "reconciliation_runs": {
        "select": "select id from public.reconciliation_runs",
        "update": "update public.reconciliation_runs set finished_at = now()",
        "delete": "delete from public.reconciliation_runs",
        "insert": "insert into public.reconciliation_runs (covered_from, covered_until) values (now(), now())",
        "snapshot": "select * from public.reconciliation_runs order by id",
    },
    "x_connections": {
        "select": "select user_id from public.x_connections where user_id = %(alice)s",
        "update": "update public.x_connections set scope = 'x' where user_id = %(alice)s",
        "delete": "delete from public.x_connections where user_id = %(alice)s",
        "insert": "insert into public.x_connections (user_id, access_token_sealed, key_id, expires_at)"
        " values (%(alice)s, '\\x00', 'k', now())",
        "snapshot": "select * from public.x_connections order by user_id",
    },
    "x_oauth_states": {
        "select": "select state_hash from public.x_oauth_states",
        "update": "update public.x_oauth_states set expires_at = now() + interval '1 year'",
        "delete": "delete from public.x_oauth_states",
        "insert": "insert into public.x_oauth_states (state_hash, user_id, code_verifier_sealed, key_id,"
        " expires_at) values ('h', %(alice)s, '\\x00', 'k', now())",
        "snapshot": "select * from public.x_oauth_states order by state_hash",
    },
    "notifications": {
        "select": "select id from public.notifications where user_id = %(alice)s",
        "update": "update public.notifications set status = 'sent' where user_id = %(alice)s",
        "delete": "delete from public.notifications where user_id = %(alice)s",
        "insert": "insert into public.notifications (type, user_id, dedupe_key) values ('spared', %(alice)s, 'forged')",
        "snapshot": "select * from public.notifications order by id",
    },
    "dev_outbox": {
        "select": "select id from public.dev_outbox",
        "update": "update public.dev_outbox set summary = 'x'",
        "delete": "delete from public.dev_outbox",
        "insert": "insert into public.dev_outbox (channel, summary) values ('email', 'forged')",
        "snapshot": "select * from public.dev_outbox order by id",
    },
    "roulette_rolls": {
        "select": "select checkpoint_id from public.roulette_rolls where user_id = %(alice)s",
        "update": "update public.roulette_rolls set outcome = 'spared' where user_id = %(alice)s",
        "delete": "delete from public.roulette_rolls where user_id = %(alice)s",
        "insert": "insert into public.roulette_rolls (checkpoint_id, goal_id, user_id, draw, odds_numerator,"
        " odds_denominator, outcome) values (%(draft_checkpoint)s, %(goal)s, %(alice)s, 1, 1, 3, 'spared')",
        "snapshot": "select * from public.roulette_rolls order by checkpoint_id",
    },
    "consequence_deliveries": {
        "select": "select id from public.consequence_deliveries",
        "update": "update public.consequence_deliveries set status = 'queued'",
        "delete": "delete from public.consequence_deliveries",
        "insert": "insert into public.consequence_deliveries (consequence_id, channel, recipient)"
        " values (%(consequence)s, 'email', 'forged@example.com')",
        "snapshot": "select * from public.consequence_deliveries order by id",
    },
    "witness_requests": {
        "select": "select id from public.witness_requests",
        "update": "update public.witness_requests set used_at = null",
        "delete": "delete from public.witness_requests",
        "insert": "insert into public.witness_requests (submission_id, contact_id, expires_at)"
        " values (%(submission)s, %(contact)s, now() + interval '1 year')",
        "snapshot": "select * from public.witness_requests order by id",
    },
    "contact_suppressions": {
        "select": "select mailbox from public.contact_suppressions where user_id = %(alice)s",
        "update": "update public.contact_suppressions set mailbox = 'x@example.com' where user_id = %(alice)s",
        "delete": "delete from public.contact_suppressions where user_id = %(alice)s",
        "insert": "insert into public.contact_suppressions (user_id, mailbox) values (%(alice)s, 'y@example.com')",
        "snapshot": "select * from public.contact_suppressions order by user_id, mailbox",
    },
    "grading_requests": {
        "select": "select id from public.grading_requests where user_id = %(alice)s",
        "update": "update public.grading_requests set requested_at = now() - interval '1 day'",
        "delete": "delete from public.grading_requests where user_id = %(alice)s",
        "insert": "insert into public.grading_requests (user_id, submission_id) values (%(alice)s, %(submission)s)",
        "snapshot": "select * from public.grading_requests order by id",
    },
    "proof_captures": {
        "select": "select submission_id from public.proof_captures",
        "update": "update public.proof_captures set content = 'forged'",
        "delete": "delete from public.proof_captures",
        "insert": "insert into public.proof_captures (submission_id, content, content_type, sha256)"
        " values (%(submission)s, 'x', 'text/plain', repeat('0', 64))",
        "snapshot": "select * from public.proof_captures order by submission_id",
    },
    "audit_log": {
        "select": "select id from public.audit_log where user_id = %(alice)s",
        "update": "update public.audit_log set action = 'pwned' where user_id = %(alice)s",
        "delete": "delete from public.audit_log where user_id = %(alice)s",
        "insert": "insert into public.audit_log (entity, action, user_id) values ('goal', 'forged', %(alice)s)",
        "snapshot": "select * from public.audit_log order by id",
    },
}


def _run(role: str, user: UUID | None, sql: str, params: dict[str, Any]) -> int | list[Any]:
    """Run one statement as an API role; the row count, or rows for a select."""
    claims: dict[str, Any] = {"role": role}
    if user is not None:
        claims |= {"sub": str(user), "aud": "authenticated"}
    with db.as_role(role, claims) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else cur.rowcount


def _outcome(role: str, user: UUID | None, sql: str, params: dict[str, Any], *, schema_denial_ok: bool = False) -> str:
    try:
        result = _run(role, user, sql, params)
    except psycopg.Error as error:
        assert error.sqlstate == "42501", f"unexpected error {error.sqlstate}: {error}"
        # On tables, a guard that cannot even be reached is a broken guard, not a refusal.
        assert schema_denial_ok or "for schema" not in str(error), str(error)
        return "denied"
    return "nothing" if (result == 0 or result == []) else "did"


def test_every_public_table_has_rls_enabled_and_forced(owner: Conn) -> None:
    rows = owner.execute(
        "select c.relname, c.relrowsecurity, c.relforcerowsecurity from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind in ('r', 'p')"
    ).fetchall()
    assert rows, "no tables found in public"
    missing = [r["relname"] for r in rows if not (r["relrowsecurity"] and r["relforcerowsecurity"])]
    assert missing == []
    assert {r["relname"] for r in rows} == set(TABLES), "every table needs a row in the RLS matrix"


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize("command", ["select", "update", "delete", "insert"])
def test_rls_other_user_cannot_touch_alices_rows(owner: Conn, world: World, table: str, command: str) -> None:
    params = world.ids()
    before = owner.execute(TABLES[table]["snapshot"], params).fetchall()
    outcome = _outcome("authenticated", world.bob, TABLES[table][command], params)
    assert outcome in ("nothing", "denied"), f"bob could {command} alice's {table}"
    if command == "insert":
        assert outcome == "denied"
    assert owner.execute(TABLES[table]["snapshot"], params).fetchall() == before


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize("command", ["select", "update", "delete", "insert"])
def test_rls_anon_can_do_nothing(owner: Conn, world: World, table: str, command: str) -> None:
    params = world.ids()
    before = owner.execute(TABLES[table]["snapshot"], params).fetchall()
    assert _outcome("anon", None, TABLES[table][command], params) == "denied"
    assert owner.execute(TABLES[table]["snapshot"], params).fetchall() == before


# What the owner herself may do, table by table ("did"), and what stays closed to her.
OWNER_EXPECTED = {
    "users": {"select": "did", "update": "did", "delete": "denied", "insert": "denied"},
    "goals": {"select": "did", "update": "did", "delete": "did", "insert": "did"},
    "checkpoints": {"select": "did", "update": "did", "delete": "did", "insert": "did"},
    "submissions": {"select": "did", "update": "did", "delete": "denied", "insert": "did"},
    "kompromat": {"select": "did", "update": "did", "delete": "did", "insert": "denied"},
    "contacts": {"select": "did", "update": "did", "insert": "did"},
    "consequences": {"select": "did", "update": "denied", "delete": "denied", "insert": "denied"},
    "team_members": {"select": "did", "update": "denied", "delete": "did", "insert": "did"},
    "audit_log": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    "holding_cells": {"select": "did", "update": "denied", "delete": "denied", "insert": "denied"},
    "ledger_entries": {"select": "did", "update": "denied", "delete": "denied", "insert": "denied"},
    "withdrawals": {"select": "did", "update": "denied", "delete": "denied", "insert": "denied"},
    "withdrawal_refunds": {"select": "did", "update": "denied", "delete": "denied", "insert": "denied"},
    "stripe_events": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    # The key lifecycle and the erasure log are the service's alone.
    "master_keys": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    "erasure_log": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    "x_connections": {"select": "did", "update": "denied", "delete": "denied", "insert": "denied"},
    "x_oauth_states": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    "notifications": {"select": "did", "update": "denied", "delete": "denied", "insert": "denied"},
    "dev_outbox": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    "roulette_rolls": {"select": "did", "update": "denied", "delete": "denied", "insert": "denied"},
    "consequence_deliveries": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    "witness_requests": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    # A declined mailbox stays declined: the owner can neither read nor lift the suppression.
    "contact_suppressions": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    # The hourly grading budget is counted by the service; the owner cannot reset it.
    "grading_requests": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    # What the proof was when submitted: the service's record, never rewritten by the owner.
    "proof_captures": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    # Data keys are the service's alone: the owner cannot read, replace or keep one (issue 19).
    "user_data_keys": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    # The owner reads their change requests; only change_goal writes them (issue 15).
    "goal_change_requests": {"select": "did", "update": "denied", "delete": "denied", "insert": "denied"},
    # The platform's books and the operators' money items are the service's alone (issue 18).
    "stripe_movements": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    "platform_entries": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    "proof_matches": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    "disputes": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    "money_items": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
    "reconciliation_runs": {"select": "denied", "update": "denied", "delete": "denied", "insert": "denied"},
}


@pytest.mark.parametrize(
    ("table", "command"),
    [(t, c) for t, commands in sorted(OWNER_EXPECTED.items()) for c in sorted(commands)],
)
def test_rls_owner_matrix(owner: Conn, world: World, table: str, command: str) -> None:
    params = world.ids()
    if table == "team_members" and command == "insert":
        params["bob"] = f.user(owner, "new-member")  # alice shares her goal with a new member
    assert _outcome("authenticated", world.alice, TABLES[table][command], params) == (OWNER_EXPECTED[table][command])


def test_rls_contacts_owner_may_delete_when_no_goal_is_active(owner: Conn) -> None:
    carol = f.user(owner, "carol")
    contact = f.contact(owner, carol)
    f.goal(owner, carol, activate=False)
    assert _outcome("authenticated", carol, "delete from public.contacts where id = %(c)s", {"c": contact}) == "did"


def test_rls_team_member_reads_shared_goal_but_cannot_change_it(owner: Conn, world: World) -> None:
    params = world.ids()
    assert _outcome("authenticated", world.teammate, TABLES["goals"]["select"], params) == "did"
    assert _outcome("authenticated", world.teammate, TABLES["checkpoints"]["select"], params) == "did"
    title = "update public.goals set title = 'pwned' where id = %(goal)s"
    assert _outcome("authenticated", world.teammate, title, params) == "nothing"
    assert _outcome("authenticated", world.teammate, TABLES["submissions"]["select"], params) == "nothing"
    assert owner.execute("select title from public.goals where id = %s", [world.goal]).fetchone() == {
        "title": "Write the book"
    }


def test_rls_owner_cannot_read_kompromat_ciphertext(owner: Conn, world: World) -> None:
    sql = "select encrypted_content from public.kompromat where id = %(kompromat)s"
    assert _outcome("authenticated", world.alice, sql, world.ids()) == "denied"


def test_rls_authenticated_cannot_call_state_functions(owner: Conn, world: World) -> None:
    for sql in (
        "select app.activate_goal(%(draft_goal)s)",
        "select app.record_grade(%(submission)s, 'passed')",
        "select app.check_missed_deadlines()",
    ):
        outcome = _outcome("authenticated", world.alice, sql, world.ids(), schema_denial_ok=True)
        assert outcome == "denied", sql
    status = owner.execute("select status from public.submissions where id = %s", [world.submission]).fetchone()
    assert status == {"status": "pending"}
