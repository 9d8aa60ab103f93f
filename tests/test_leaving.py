"""Leaving (issue 19): deletion erases personal data, keeps every money record, and is no way out
of a deadline. Through HTTP and the real database; the Auth admin API's stand-in deletes the Auth
user the way Supabase does, which runs the erasure trigger."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any
from uuid import UUID

import psycopg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from shared.account.erasure import DATA_MAP
from shared.auth import mint_token
from shared.dev.localdb import POSTGRES_BIN
from tests import factories as f
from tests.conftest import Providers
from tests.fakes import FakeStorage
from tests.http_helpers import bearer, client
from tests.test_books import operator
from tests.test_engine import check, connect_x, overdue, with_kompromat

Conn = psycopg.Connection[dict[str, Any]]
MARKERS = {
    "name": "Zebulon Markerfield",
    "email": "zebulon.marker@example.com",
    "contact": "carla.markercontact@example.com",
    "comment": "MARKER-witness-comment-42",
}
KOMPROMAT = b"MARKER-KOMPROMAT-BYTES-0042"


@pytest.fixture
def proof_storage(httpserver: HTTPServer) -> FakeStorage:
    """Storage's object API: download, list a folder page by page, delete."""
    return FakeStorage(httpserver).install()


@pytest.fixture
def auth_admin(
    providers: Providers,
    httpserver: HTTPServer,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    proof_storage: FakeStorage,
) -> list[str]:
    """Supabase's Auth admin API and Storage, as the providers layer calls them."""
    monkeypatch.setenv("SUPABASE_URL", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("SUPABASE_SECRET_KEYS", "sb_secret_leaving0123456789abcdef")
    deleted: list[str] = []

    def delete_user(request: Request) -> Response:
        user_id = request.path.rsplit("/", 1)[1]
        with psycopg.connect(database, autocommit=True) as conn:
            try:
                # What Supabase Auth runs: the erasure trigger decides.
                conn.execute("delete from auth.users where id = %s", [user_id])
            except psycopg.Error as error:
                return Response(json.dumps({"msg": "Database error deleting user", "detail": str(error)}), status=500)
        deleted.append(user_id)
        return Response("{}", content_type="application/json")

    httpserver.expect_request(re.compile(r"^/auth/v1/admin/users/.+"), method="DELETE").respond_with_handler(
        delete_user
    )
    return deleted


def _leave(user: UUID, action: str = "request") -> Any:
    return client("delete_account").post("/", json={"action": action}, headers=bearer(mint_token(str(user))))


def _marked_user(owner: Conn) -> UUID:
    user = f.user(owner, "zebulon")
    owner.execute("update auth.users set email = %s where id = %s", [MARKERS["email"], user])
    owner.execute(
        "update public.users set display_name = %s, email = %s where id = %s", [MARKERS["name"], MARKERS["email"], user]
    )
    return user


def _dump(database: str) -> str:
    result = subprocess.run(
        [str(POSTGRES_BIN / "pg_dump"), "--data-only", "--dbname", database], capture_output=True, check=True
    )
    return result.stdout.decode("utf-8", errors="replace")


# -----------------------------------------------------------------------------
# Deleting the Auth user (the dashboard, auth.admin.deleteUser)
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("holding", ["active_goal", "unfinished_consequence", "money"])
def test_an_auth_side_delete_of_a_committed_user_is_refused_and_loses_nothing(owner: Conn, holding: str) -> None:
    user = f.user(owner)
    if holding == "active_goal":
        f.goal(owner, user, stake="30.00")
    elif holding == "unfinished_consequence":
        goal = f.goal(owner, user, stake="0.00")
        [checkpoint, _final] = f.checkpoint_ids(owner, goal)[:2]
        f.consequence(owner, user, goal, checkpoint, kind="humiliation_email")
        owner.execute("update public.goals set status = 'failed' where id = %s", [goal])
    else:
        f.fund_user(owner, user, 500)
    before = owner.execute("select count(*) as n from public.ledger_entries").fetchone()
    with pytest.raises(psycopg.Error) as refused:
        owner.execute("delete from auth.users where id = %s", [user])
    assert "cannot be deleted yet" in str(refused.value)
    assert owner.execute("select count(*) as n from public.ledger_entries").fetchone() == before
    assert owner.execute("select email from public.users where id = %s", [user]).fetchone() is not None


def test_an_auth_side_delete_of_a_settled_user_erases_and_keeps_the_money_facts(owner: Conn) -> None:
    user = _marked_user(owner)
    f.contact(owner, user, email=MARKERS["contact"])
    owner.execute("delete from auth.users where id = %s", [user])
    assert owner.execute("select 1 from public.users where id = %s", [user]).fetchone() is None
    tomb = owner.execute("select id, email, display_name, erased_at from public.users where erased_at is not null")
    [row] = tomb.fetchall()
    assert row["email"] is None and row["display_name"] is None
    assert owner.execute("select count(*) as n from public.contacts").fetchone() == {"n": 0}


# -----------------------------------------------------------------------------
# delete_account: leaving under the notice period
# -----------------------------------------------------------------------------
def test_leaving_with_a_checkpoint_due_inside_the_horizon_pays_it_once_then_erases_everything(
    providers: Providers, auth_admin: list[str], owner: Conn, database: str
) -> None:
    user = _marked_user(owner)
    target = f.contact(owner, user, email=MARKERS["contact"])
    with_kompromat(owner, user, "minor", KOMPROMAT)
    goal = f.goal(owner, user, days=30, stake="30.00", checkpoints=2)  # checkpoints at +10, +20 days
    first = f.checkpoint_ids(owner, goal)[0]
    old = f.goal(owner, user, days=30, stake="0.00", checkpoints=1)
    submission = f.submission(owner, user, f.checkpoint_ids(owner, old)[0])
    owner.execute(
        "insert into public.witness_requests (submission_id, contact_id, expires_at, used_at, verdict, comment)"
        " values (%s, %s, now() + interval '1 day', now(), 'pass', %s)",
        [submission, target, MARKERS["comment"]],
    )
    owner.execute("update public.checkpoints set deadline = now() + interval '3 days' where id = %s", [first])
    connect_x(owner, user)
    asked = _leave(user)
    assert asked.status_code == 200, asked.json
    assert asked.json["leaving"] is True and asked.json["goals"][0]["cancellation"] == "scheduled"
    assert _leave(user).status_code == 409  # a second request
    with pytest.raises(psycopg.Error):
        f.goal(owner, user, fund=False)  # a leaving account starts nothing
    # Inside the notice period the first checkpoint is missed: its consequence runs, once.
    overdue(owner, first)
    check()
    check()
    assert [t["amount"] for t in providers.stripe.objects.get("transfer", [])] == [1000]
    assert owner.execute("select count(*) as n from public.users where erased_at is not null").fetchone() == {"n": 0}
    # The notice period ends: the goal is cancelled, the rest refunded to the card, then erasure.
    owner.execute(
        "update public.goal_change_requests set requested_at = requested_at - interval '8 days',"
        " effective_at = now() - interval '1 second' where status = 'pending'"
    )
    first_pass = check()
    assert first_pass["leaving"].get("refunded") == 1
    second_pass = check()
    assert second_pass["leaving"].get("erased") == 1, second_pass
    assert auth_admin == [str(user)]
    assert [r.form["amount"] for r in providers.stripe.created("/v1/refunds")] == ["2000"]
    assert providers.x.revoked  # the X token was revoked at X first
    # After settlement: nothing that identifies the person is left anywhere in the database.
    dump = _dump(database)
    for name, marker in MARKERS.items():
        assert marker not in dump, f"{name} survived erasure"
    assert KOMPROMAT.decode() not in dump
    assert str(target) not in dump
    # The money facts remain, under the tombstone: per goal, the ledger equals what Stripe saw.
    forfeited = owner.execute(
        "select sum(forfeited_delta) as cents from public.ledger_entries where goal_id = %s", [goal]
    ).fetchone()
    assert forfeited == {"cents": 1000}
    assert owner.execute("select count(*) as n from public.users where id = %s", [user]).fetchone() == {"n": 0}
    # A cancel after erasure, or a status, finds no account.
    assert _leave(user, "cancel").status_code in (401, 404)


def test_leaving_requests_refused_with_a_clear_4xx(providers: Providers, owner: Conn) -> None:
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    assert _leave(alice, "cancel").status_code == 409  # not leaving
    assert _leave(alice).status_code == 200
    assert _leave(bob, "status").json["leaving"] is False  # another user's token sees only their own
    assert _leave(bob, "cancel").status_code == 409
    service = client("delete_account").post(
        "/", json={"action": "request"}, headers=bearer(mint_token(None, role="service_role"))
    )
    assert service.status_code == 403
    assert (
        client("delete_account")
        .post("/", json={"action": "leave_now"}, headers=bearer(mint_token(str(alice))))
        .status_code
        == 400
    )
    cancelled = _leave(alice, "cancel")
    assert cancelled.status_code == 200 and cancelled.json["leaving"] is False


def test_export_holds_every_kind_of_row_of_the_caller_and_nothing_of_anyone_else(
    providers: Providers, owner: Conn
) -> None:
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    for user in (alice, bob):
        contact = f.contact(owner, user, email=f"contact-{user}@example.com")
        minor = with_kompromat(owner, user, "minor", KOMPROMAT)
        goal = f.goal(owner, user, stake="30.00", minor=minor, witness=None)
        checkpoint = f.checkpoint_ids(owner, goal)[0]
        submission = f.submission(owner, user, checkpoint)
        owner.execute(
            "insert into public.witness_requests (submission_id, contact_id, expires_at, used_at, verdict, comment)"
            " values (%s, %s, now() + interval '1 day', now(), 'pass', 'fine')",
            [submission, contact],
        )
        f.fund_user(owner, user, 700)
        owner.execute("select app.begin_withdrawal(%s, 500, %s)", [user, f"export-{user}"])
        f.consequence(owner, user, goal, checkpoint)
        owner.execute(
            "insert into public.notifications (type, user_id, recipient_contact_id, dedupe_key) values"
            " ('contact_verification', %s, %s, %s)",
            [user, contact, f"export-{user}"],
        )
    exported = _leave(alice, "export")
    assert exported.status_code == 200
    data = exported.json["data"]
    for kind in (
        "profile",
        "goals",
        "checkpoints",
        "submissions",
        "witness_verdicts",
        "consequences",
        "ledger",
        "withdrawals",
        "refunds",
        "contacts",
        "kompromat",
        "notifications",
        "audit",
        "holding_cell",
    ):
        assert data[kind], f"export has no {kind}"
    text = json.dumps(exported.json)
    assert str(bob) not in text and f"contact-{bob}" not in text
    assert KOMPROMAT.decode() not in text
    assert set(data["kompromat"][0]) == {"id", "severity", "file_type", "size_bytes", "created_at"}


# -----------------------------------------------------------------------------
# The data map
# -----------------------------------------------------------------------------
def _unmapped(conn: Conn) -> dict[str, set[str]]:
    rows = conn.execute(
        "select table_name, column_name from information_schema.columns where table_schema = 'public'"
    ).fetchall()
    catalogue: dict[str, set[str]] = {}
    for r in rows:
        catalogue.setdefault(r["table_name"], set()).add(r["column_name"])
    missing = {t: cols - DATA_MAP[t].columns() for t, cols in catalogue.items() if t in DATA_MAP}
    missing.update({t: cols for t, cols in catalogue.items() if t not in DATA_MAP})
    stale = {t: DATA_MAP[t].columns() - catalogue.get(t, set()) for t in DATA_MAP}
    return {k: v for k, v in {**missing, **{f"{t} (no longer)": v for t, v in stale.items()}}.items() if v}


def test_every_table_and_column_has_an_erasure_rule(owner: Conn) -> None:
    assert _unmapped(owner) == {}
    with owner.transaction(force_rollback=True):
        owner.execute("create table public.new_feature (id uuid primary key, user_id uuid, nickname text)")
        owner.execute("alter table public.goals add column mood text")
        assert _unmapped(owner) == {"new_feature": {"id", "user_id", "nickname"}, "goals": {"mood"}}


# -----------------------------------------------------------------------------
# Kompromat expires
# -----------------------------------------------------------------------------
def test_kompromat_past_its_retention_is_destroyed_and_what_a_consequence_needs_is_not(
    providers: Providers, owner: Conn
) -> None:
    user = f.user(owner)
    f.contact(owner, user)
    spent = with_kompromat(owner, user, "minor", KOMPROMAT)
    needed = with_kompromat(owner, user, "major", KOMPROMAT)
    fresh = with_kompromat(owner, user, "minor", KOMPROMAT)
    in_use = with_kompromat(owner, user, "major", KOMPROMAT)
    f.goal(owner, user, stake="0.00", major=in_use)  # an active goal still needs it
    closed = f.goal(owner, user, stake="0.00", minor=spent, major=needed)
    checkpoint = f.checkpoint_ids(owner, closed)[0]
    owner.execute(
        "update public.goals set status = 'failed', closed_at = now() - interval '40 days' where id = %s", [closed]
    )
    consequence = f.consequence(owner, user, closed, checkpoint, kind="humiliation_email")
    owner.execute(
        "update public.consequences set kompromat_id = %s, execute_after = now() + interval '1 day',"
        " execution_status = 'held' where id = %s",
        [needed, consequence],
    )
    owner.execute("update public.kompromat set created_at = now() - interval '60 days' where id <> %s", [fresh])
    result = check()
    assert result["kompromat_expired"] == 1
    left = {r["id"] for r in owner.execute("select id from public.kompromat").fetchall()}
    assert left == {needed, fresh, in_use}  # only the spent one, unneeded for 40 days, is gone
    told = owner.execute("select type::text, subject_id from public.notifications where type = 'kompromat_expired'")
    assert told.fetchall() == [{"type": "kompromat_expired", "subject_id": spent}]
    assert any(m.json["subject"] == "Your kompromat is destroyed" for m in providers.sendgrid.mails)
    assert check()["kompromat_expired"] == 0  # once


def test_after_erasure_a_backup_copy_of_the_kompromat_no_longer_opens(providers: Providers, owner: Conn) -> None:
    from shared.account import kompromat, sealing

    user = f.user(owner)
    uploaded = client("upload_kompromat").post(
        "/",
        data={"severity": "minor", "file": (__import__("io").BytesIO(KOMPROMAT), "k.txt", "text/plain")},
        headers=bearer(mint_token(str(user))),
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 200, uploaded.json
    item = UUID(uploaded.json["id"])
    # What a backup holds: the row's ciphertext, copied before the erasure.
    backup = owner.execute("select encrypted_content, key_id from public.kompromat where id = %s", [item]).fetchone()
    assert backup is not None and backup["key_id"] == sealing.USER_KEY
    copy = sealing.Sealed(backup["key_id"], bytes(backup["encrypted_content"]))
    assert sealing.open_sealed(copy, purpose=kompromat.PURPOSE, row_id=item, user_id=user) == KOMPROMAT
    owner.execute("delete from auth.users where id = %s", [user])  # a settled account, erased
    with pytest.raises(sealing.SealingError):
        sealing.open_sealed(copy, purpose=kompromat.PURPOSE, row_id=item, user_id=user)
    assert owner.execute("select count(*) as n from public.user_data_keys").fetchone() == {"n": 0}


def test_an_erased_accounts_money_facts_are_purged_after_the_retention_period(
    providers: Providers, auth_admin: list[str], owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f.user(owner)
    f.fund_user(owner, user, 2000)
    assert _leave(user).status_code == 200
    check()  # the 20.00 is refunded to the card
    check()  # then the account is erased
    [tomb] = owner.execute("select id from public.users where erased_at is not null").fetchall()
    assert owner.execute(
        "select count(*) as n from public.ledger_entries where user_id = %s", [tomb["id"]]
    ).fetchone() == {"n": 2}
    assert check()["leaving"].get("tombstones_purged") is None  # kept for the retention period
    owner.execute("update public.users set erased_at = now() - interval '8 years' where id = %s", [tomb["id"]])
    assert check()["leaving"]["tombstones_purged"] == 1
    for table in ("ledger_entries", "stripe_movements", "withdrawals", "holding_cells"):
        found = owner.execute(f"select count(*) as n from public.{table} where user_id = %s", [tomb["id"]]).fetchone()
        assert found == {"n": 0}, table
    assert owner.execute("select count(*) as n from public.users where id = %s", [tomb["id"]]).fetchone() == {"n": 0}
    # The books still balance (asserted after every test by tests/ledger_invariants.py).


def test_a_leaving_account_can_still_withdraw(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    f.fund_user(owner, user, 1500)
    assert _leave(user).status_code == 200
    withdrawn = client("holding_cell").post(
        "/",
        json={"action": "withdraw", "amount_cents": 1000, "idempotency_key": "leaving-own-0001"},
        headers=bearer(mint_token(str(user))),
    )
    assert withdrawn.status_code == 200 and withdrawn.json["status"] == "completed"
    assert _leave(user, "status").json["waiting_for"] == "it has money in the holding cell"


def test_an_unusable_x_token_never_blocks_erasure_of_that_account_or_the_next(
    providers: Providers, auth_admin: list[str], owner: Conn
) -> None:
    """An unlucky day: the first leaving account's X token expired with no refresh token (and
    another's sealed token is corrupt). Both are still erased, in one pass, and the others too."""
    expired, corrupt, plain = f.user(owner, "expired"), f.user(owner, "corrupt"), f.user(owner, "plain")
    for user in (expired, corrupt):
        connect_x(owner, user)
    owner.execute(
        "update public.x_connections set expires_at = now() - interval '1 day', refresh_token_sealed = null"
        " where user_id = %s",
        [expired],
    )
    owner.execute(
        "update public.x_connections set access_token_sealed = decode(repeat('00', 40), 'hex') where user_id = %s",
        [corrupt],
    )
    for user in (expired, corrupt, plain):
        assert _leave(user).status_code == 200
    assert check()["leaving"] == {"erased": 3}
    assert sorted(auth_admin) == sorted(str(u) for u in (expired, corrupt, plain))
    assert owner.execute("select count(*) as n from public.x_connections").fetchone() == {"n": 0}


# -----------------------------------------------------------------------------
# Refunds that stall or are refused while leaving
# -----------------------------------------------------------------------------
def _refund_rows(owner: Conn, user: UUID) -> list[dict[str, Any]]:
    return owner.execute(
        "select id, status::text as status, last_error from public.withdrawal_refunds where user_id = %s"
        " order by created_at",
        [user],
    ).fetchall()


def _leaving_with_refund_faults(owner: Conn, providers: Providers, *faults: int) -> UUID:
    """A user with 20.00 available who asks to leave; Stripe answers their refunds with `faults` first."""
    user = f.user(owner)
    f.fund_user(owner, user, 2000)
    assert _leave(user).status_code == 200
    providers.stripe.fail_next("/v1/refunds", *faults)
    return user


def _refund_keys(providers: Providers) -> list[str]:
    return [r.headers.get("Idempotency-Key", "") for r in providers.stripe.requests if r.path == "/v1/refunds"]


def test_a_refund_an_outage_left_planned_is_resent_with_its_key_then_the_account_is_erased(
    providers: Providers, auth_admin: list[str], owner: Conn
) -> None:
    user = _leaving_with_refund_faults(owner, providers, 503, 503, 503)  # the first try and both SDK retries
    first = check()
    assert first["leaving"] == {"refunded": 1} and first["stage_failures"] == []
    [planned] = _refund_rows(owner, user)
    assert planned["status"] == "planned"
    assert _leave(user, "status").json["waiting_for"] == "a refund to its card is not finished"
    # A refund planned a moment ago may still be on its way in the request that planned it.
    assert check()["refunds_resumed"] == 0
    assert providers.stripe.created("/v1/refunds") == []
    owner.execute("update public.withdrawal_refunds set created_at = now() - interval '2 minutes'")
    resumed = check()
    # Resent first in the pass, so the same pass finds the account settled and erases it.
    assert (resumed["refunds_resumed"], resumed["leaving"]) == (1, {"erased": 1})
    assert [r.form["amount"] for r in providers.stripe.created("/v1/refunds")] == ["2000"]
    assert set(_refund_keys(providers)) == {f"refund-{planned['id']}"}  # resent with its own key
    assert auth_admin == [str(user)]


def test_a_refused_refund_goes_to_the_operators_and_is_not_retried_until_they_resolve_it(
    providers: Providers, auth_admin: list[str], owner: Conn
) -> None:
    user = _leaving_with_refund_faults(owner, providers, 400)  # e.g. the charge is too old to refund
    assert check()["leaving"] == {"refunded": 1}
    [refused] = _refund_rows(owner, user)
    assert refused["status"] == "failed" and refused["last_error"] == "stripe:fault_400"
    # The money is the user's again, and a person is told it could not reach the card.
    items = owner.execute(
        "select id, kind::text, source_id, cents, user_id from public.money_items where resolved_at is null"
    ).fetchall()
    assert [(i["kind"], i["source_id"], i["cents"], i["user_id"]) for i in items] == [
        ("refund_refused", f"withdrawal_refund:{refused['id']}", 2000, user)
    ]
    assert _leave(user, "status").json["waiting_for"] == "a refund to its card was refused; a person is looking at it"
    # Pass after pass, nothing is sent again and nothing is erased while the item is open.
    attempts = len(_refund_keys(providers))
    for _ in range(3):
        assert check()["leaving"] == {"waiting_for_operator": 1}
    assert len(_refund_keys(providers)) == attempts
    assert auth_admin == []
    listed = client("operator_review").post("/", json={"action": "list"}, headers=operator())
    [item] = [i for i in listed.json["items"] if i["kind"] == "money"]
    assert (item["why"], item["amount_cents"]) == ("refund_refused", 2000)
    assert item["details"]["withdrawal_id"] and item["details"]["error"] == "stripe:fault_400"
    body = {"action": "resolve_money", "money_item_id": item["id"], "reason": "the user's new card is on file"}
    assert client("operator_review").post("/", json=body, headers=operator()).status_code == 200
    # Resolved: the next pass tries again under a new key (the old one would answer the refusal).
    assert check()["leaving"] == {"refunded": 1}
    rows = _refund_rows(owner, user)
    assert [r["status"] for r in rows] == ["failed", "succeeded"]
    assert [r.form["amount"] for r in providers.stripe.created("/v1/refunds")] == ["2000"]
    assert check()["leaving"] == {"erased": 1}
    assert auth_admin == [str(user)]


def test_a_refused_refund_of_a_user_who_stays_reaches_the_operators_too(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    f.fund_user(owner, user, 1500)
    providers.stripe.fail_next("/v1/refunds", 400)
    withdrawn = client("holding_cell").post(
        "/",
        json={"action": "withdraw", "amount_cents": 1000, "idempotency_key": "refused-0001"},
        headers=bearer(mint_token(str(user))),
    )
    assert withdrawn.status_code == 200 and withdrawn.json["status"] == "failed"
    assert withdrawn.json["balance"]["available_cents"] == 1500  # back in the cell, at once
    [row] = owner.execute("select kind::text, cents from public.money_items where user_id = %s", [user]).fetchall()
    assert row == {"kind": "refund_refused", "cents": 1000}


def _planned(owner: Conn, providers: Providers) -> UUID:
    """A leaving user whose refund an outage left planned."""
    user = _leaving_with_refund_faults(owner, providers, 503, 503, 503)
    assert check()["leaving"] == {"refunded": 1}
    return user


def _a_while_ago(owner: Conn) -> None:
    owner.execute("update public.withdrawal_refunds set created_at = now() - interval '2 minutes'")


def test_overlapping_resume_passes_send_one_refund(providers: Providers, owner: Conn) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from shared.money import holding_cell

    user = _planned(owner, providers)
    _a_while_ago(owner)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: holding_cell.resume_planned_refunds(), range(4)))
    assert [r.form["amount"] for r in providers.stripe.created("/v1/refunds")] == ["2000"]
    assert [r["status"] for r in _refund_rows(owner, user)] == ["succeeded"]
    cell = owner.execute("select available_cents from public.holding_cells where user_id = %s", [user]).fetchone()
    assert cell == {"available_cents": 0}  # the money left once, and the books say so (ledger_invariants)


def test_one_withdrawal_that_cannot_be_resumed_stops_no_other(
    providers: Providers, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.money import holding_cell

    poisoned, other = _planned(owner, providers), _planned(owner, providers)
    _a_while_ago(owner)
    real = holding_cell.send_refunds

    def send(user_id: UUID, withdrawal_id: UUID) -> None:
        if user_id == poisoned:
            raise RuntimeError("a row no one foresaw")
        real(user_id, withdrawal_id)

    monkeypatch.setattr(holding_cell, "send_refunds", send)
    assert holding_cell.resume_planned_refunds() == 1
    assert [r["status"] for r in _refund_rows(owner, other)] == ["succeeded"]
    assert [r["status"] for r in _refund_rows(owner, poisoned)] == ["planned"]  # left for the next pass
    monkeypatch.setattr(holding_cell, "send_refunds", real)
    assert holding_cell.resume_planned_refunds() == 1
    assert [r["status"] for r in _refund_rows(owner, poisoned)] == ["succeeded"]


def test_erasure_deletes_the_users_whole_storage_folder_page_by_page_and_nothing_of_anyone_else(
    providers: Providers, auth_admin: list[str], proof_storage: FakeStorage, owner: Conn
) -> None:
    """Files uploaded that never became a submission are the user's too: the folder is listed page by
    page, nested folders included, and all of it deleted; another user's folder is untouched."""
    user, other = f.user(owner, "leaver"), f.user(owner, "stayer")
    for i in range(230):  # more than two pages of Storage's list
        proof_storage.objects[f"proofs/{user}/drafts/page-{i:03d}.png"] = b"draft"
    proof_storage.objects[f"proofs/{user}/never-submitted.jpg"] = b"a selfie"
    proof_storage.objects[f"proofs/{user}/a/b/c/deep.txt"] = b"notes"
    proof_storage.objects[f"proofs/{other}/mine.png"] = b"not yours"
    submission = f.submission(owner, user, f.checkpoint_ids(owner, f.goal(owner, user, stake="0.00"))[0])
    owner.execute(
        "update public.submissions set file_path = %s, submission_type = 'file', external_url = null where id = %s",
        [f"{user}/drafts/page-000.png", submission],
    )
    owner.execute("update public.goals set status = 'completed' where user_id = %s", [user])
    assert _leave(user).status_code == 200
    passes = [check() for _ in range(3)]
    assert any(p["leaving"].get("erased") for p in passes)
    assert sum(p["erasures_logged"] for p in passes) == 1
    assert all(p["stage_failures"] == [] for p in passes), passes
    assert auth_admin == [str(user)]
    # The erasure log's copy outside the database: the tombstone id alone.
    [logged] = [k for k in proof_storage.objects if k.startswith("erasure-log/")]
    tombstone = owner.execute("select tombstone_id from public.erasure_log").fetchone()
    assert tombstone is not None and logged == f"erasure-log/{tombstone['tombstone_id']}"
    del proof_storage.objects[logged]
    assert [k for k in proof_storage.objects if k.startswith(f"proofs/{user}/")] == []
    assert proof_storage.objects == {f"proofs/{other}/mine.png": b"not yours"}
    listed = [r for r in proof_storage.requests if "/object/list/" in r.path]
    assert any(r.json["offset"] == 200 for r in listed)  # the third page was asked for


def test_export_is_limited_per_account_per_hour(providers: Providers, owner: Conn) -> None:
    """A stolen token cannot pull the whole account again and again: EXPORTS_PER_HOUR (5), then 429
    with Retry-After; another account is not touched by it."""
    alice, bob = f.user(owner, "alice"), f.user(owner, "bob")
    answers = [_leave(alice, "export") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[-1].json["error"]["code"] == "rate_limited"
    assert 3000 < int(answers[-1].headers["Retry-After"]) <= 3601
    assert _leave(bob, "export").status_code == 200
    # An hour later it is open again.
    owner.execute(
        "update public.audit_log set occurred_at = occurred_at - interval '61 minutes' where user_id = %s", [alice]
    )
    assert _leave(alice, "export").status_code == 200
