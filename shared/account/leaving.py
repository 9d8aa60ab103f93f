"""delete_account's core: leaving is allowed, escaping is not.

A request cancels every active goal through change_goal's rules (an easing change under the
notice period: whatever falls due inside it stays due and its consequences run). While leaving,
the account creates no goal and can still withdraw. check_deadlines' `leaving` stage refunds what
is left in the holding cell to the card (the withdrawal path) and, once every goal is closed, every
consequence finished and every refund final, erases the account: the X token is revoked at X, the
proof files are deleted from Storage, and the Auth user is deleted through Supabase's Auth admin
API, whose `delete from auth.users` runs the erasure in the database (app.erase_user, through the
auth.users trigger; the dashboard takes the same path). What erasure does to each table and column
is the data map in shared/account/erasure.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from shared import db, notifications
from shared.config import get_settings
from shared.errors import ApiError, conflict, not_found
from shared.log import get_logger
from shared.providers.errors import ProviderRefused, ProviderUnavailable

_logger = get_logger("threativator.leaving")


REFUND_REFUSED = "a refund to its card was refused; a person is looking at it"


class LeaveRequest(BaseModel):
    action: Literal["request", "cancel", "status", "export"]


class GoalOnTheWayOut(BaseModel):
    goal_id: UUID
    title: str
    status: str
    cancellation: Literal["scheduled", "runs_to_its_end"] = Field(
        description="scheduled: cancelled when its notice period ends; runs_to_its_end: its final deadline is"
        " inside the notice period, so it stays due and ends by itself"
    )
    effective_at: datetime | None = None


class LeavingStatus(BaseModel):
    leaving: bool
    requested_at: datetime | None = None
    waiting_for: str | None = Field(default=None, description="What keeps the account from being erased yet")
    goals: list[GoalOnTheWayOut] = Field(default_factory=list)


def _status(conn: db.Connection, user_id: UUID) -> LeavingStatus:
    user = conn.execute(
        "select leaving_requested_at, private.erasure_blocker(id) as blocker,"
        " exists (select 1 from public.money_items mi where mi.user_id = u.id and mi.kind = 'refund_refused'"
        "         and mi.resolved_at is null) as refund_refused"
        " from public.users u where id = %s and erased_at is null",
        [user_id],
    ).fetchone()
    if user is None:
        raise not_found("no such account")
    goals = conn.execute(
        "select g.id, g.title, g.status::text as status, r.effective_at from public.goals g"
        " left join public.goal_change_requests r on r.goal_id = g.id and r.status = 'pending'"
        " and r.change_type = 'cancel_goal' where g.user_id = %s and g.status = 'active' order by g.final_deadline",
        [user_id],
    ).fetchall()
    return LeavingStatus(
        leaving=user["leaving_requested_at"] is not None,
        requested_at=user["leaving_requested_at"],
        waiting_for=REFUND_REFUSED if user["blocker"] and user["refund_refused"] else user["blocker"],
        goals=[
            GoalOnTheWayOut(
                goal_id=g["id"],
                title=g["title"],
                status=g["status"],
                cancellation="scheduled" if g["effective_at"] else "runs_to_its_end",
                effective_at=g["effective_at"],
            )
            for g in goals
        ],
    )


def status(user_id: UUID) -> LeavingStatus:
    with db.as_service() as conn:
        return _status(conn, user_id)


def request(user_id: UUID) -> LeavingStatus:
    import psycopg

    notice = timedelta(days=get_settings().change_notice_days)
    queued: list[UUID] = []
    with db.as_service() as conn:
        user = conn.execute(
            "select leaving_requested_at from public.users where id = %s and erased_at is null for update", [user_id]
        ).fetchone()
        if user is None:
            raise not_found("no such account")
        if user["leaving_requested_at"] is not None:
            raise conflict("this account is already leaving; ask for its status, or cancel")
        conn.execute("update public.users set leaving_requested_at = now() where id = %s", [user_id])
        goals = conn.execute(
            "select id from public.goals where user_id = %s and status = 'active' order by final_deadline", [user_id]
        ).fetchall()
        for goal in goals:
            # Any easing change already waiting gives way to the cancellation (both only ease).
            conn.execute(
                "update public.goal_change_requests set status = 'canceled', canceled_at = now()"
                " where goal_id = %s and status = 'pending'",
                [goal["id"]],
            )
            try:
                with conn.transaction():
                    row = conn.execute(
                        "select id from app.request_goal_change(%s, %s, 'cancel_goal', %s, %s)",
                        [goal["id"], user_id, db.Json({"reason": "leaving"}), notice],
                    ).fetchone()
                    if row is not None:
                        queued.append(row["id"])
            except psycopg.Error as error:
                if error.sqlstate != "55000":
                    raise
                # Its final deadline is inside the notice period: it stays due and ends by itself.
        conn.execute("select app.audit('user', %s, 'leaving_requested', %s, '{}'::jsonb)", [user_id, user_id])
        answer = _status(conn, user_id)
    notifications.send_queued_about(queued)
    return answer


def cancel(user_id: UUID) -> LeavingStatus:
    with db.as_service() as conn:
        user = conn.execute(
            "select leaving_requested_at from public.users where id = %s and erased_at is null for update", [user_id]
        ).fetchone()
        if user is None:
            raise not_found("no such account")
        if user["leaving_requested_at"] is None:
            raise conflict("this account is not leaving")
        conn.execute("update public.users set leaving_requested_at = null where id = %s", [user_id])
        conn.execute(
            "update public.goal_change_requests set status = 'canceled', canceled_at = now()"
            " where user_id = %s and status = 'pending' and change ->> 'reason' = 'leaving'",
            [user_id],
        )
        conn.execute("select app.audit('user', %s, 'leaving_canceled', %s, '{}'::jsonb)", [user_id, user_id])
        return _status(conn, user_id)


# -----------------------------------------------------------------------------
# Export: everything the product holds about the caller
# -----------------------------------------------------------------------------
_EXPORT: dict[str, str] = {
    "profile": "select id, email, display_name, time_zone, onboarding_completed, mute_reminders, created_at,"
    " leaving_requested_at from public.users where id = %(u)s",
    "goals": "select * from public.goals where user_id = %(u)s order by created_at",
    "checkpoints": "select cp.* from public.checkpoints cp join public.goals g on g.id = cp.goal_id"
    " where g.user_id = %(u)s order by cp.deadline",
    "submissions": "select id, checkpoint_id, submission_type, file_path, external_url, description, status,"
    " ai_analysis_result, human_verdict, submitted_at, graded_at, captured_at, proof_sha256"
    " from public.submissions where user_id = %(u)s order by submitted_at",
    "witness_verdicts": "select w.submission_id, w.verdict, w.comment, w.used_at from public.witness_requests w"
    " join public.submissions s on s.id = w.submission_id where s.user_id = %(u)s and w.used_at is not null",
    "consequences": "select * from public.consequences where user_id = %(u)s order by triggered_at",
    "roulette_rolls": "select * from public.roulette_rolls where user_id = %(u)s",
    "holding_cell": "select * from public.holding_cells where user_id = %(u)s",
    "ledger": "select * from public.ledger_entries where user_id = %(u)s order by id",
    "withdrawals": "select * from public.withdrawals where user_id = %(u)s order by created_at",
    "refunds": "select id, withdrawal_id, amount_cents, status, stripe_refund_id, created_at"
    " from public.withdrawal_refunds where user_id = %(u)s order by created_at",
    "contacts": "select id, name, email, role, verified, verified_at, declined_at, created_at"
    " from public.contacts where user_id = %(u)s order by created_at",
    "kompromat": "select id, severity, file_type, size_bytes, created_at from public.kompromat"
    " where user_id = %(u)s order by created_at",
    "x_connection": "select x_user_id, scope, connected_at, updated_at from public.x_connections where user_id = %(u)s",
    "notifications": "select id, type, status, template_data, created_at, sent_at from public.notifications"
    " where user_id = %(u)s order by created_at",
    "goal_changes": "select * from public.goal_change_requests where user_id = %(u)s order by requested_at",
    "audit": "select entity, entity_id, action, details, occurred_at from public.audit_log"
    " where user_id = %(u)s order by id",
}


class DataExport(BaseModel):
    """Every kind of row the product holds about the caller. Kompromat is metadata only."""

    exported_at: datetime
    data: dict[str, list[dict[str, Any]]]


def export(user_id: UUID) -> DataExport:
    """Everything held about the account, at most EXPORTS_PER_HOUR times an hour (429 past it). The
    count is the audit trail's, taken under a per-account lock, so concurrent exports cannot slip past."""
    limit = get_settings().exports_per_hour
    with db.as_service() as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [f"export:{user_id}"])
        recent = conn.execute(
            "select count(*) as n, min(occurred_at) + interval '1 hour' - now() as wait from public.audit_log"
            " where user_id = %s and action = 'exported' and occurred_at > now() - interval '1 hour'",
            [user_id],
        ).fetchone()
        if recent is not None and recent["n"] >= limit:
            wait = max(1, int(recent["wait"].total_seconds()) + 1)
            raise ApiError(
                429,
                "rate_limited",
                f"an account can be exported {limit} times an hour; try again later",
                headers={"Retry-After": str(wait)},
            )
        data = {name: conn.execute(query, {"u": user_id}).fetchall() for name, query in _EXPORT.items()}
        now = conn.execute("select now() as t").fetchone()
        if not data["profile"]:
            raise not_found("no such account")
        conn.execute("select app.audit('user', %s, 'exported', %s, '{}'::jsonb)", [user_id, user_id])
    assert now is not None
    return DataExport(exported_at=now["t"], data=data)


# -----------------------------------------------------------------------------
# The scheduler's stage: refund what is left, then erase
# -----------------------------------------------------------------------------
def settle_due(limit: int = 50) -> dict[str, int]:
    """Leaving accounts: refund the available balance to the card, then erase once nothing is owed."""
    import psycopg

    from shared.money import holding_cell

    counts: dict[str, int] = {}
    with db.as_service() as conn:
        rows = conn.execute(
            "select u.id, coalesce(hc.available_cents, 0) as available,"
            " exists (select 1 from public.withdrawal_refunds wr where wr.user_id = u.id"
            "         and wr.status in ('planned', 'pending')) as refunding,"
            " (select count(*) from public.withdrawal_refunds wr where wr.user_id = u.id"
            "         and wr.status in ('failed', 'canceled')) as refused_before,"
            " exists (select 1 from public.money_items mi where mi.user_id = u.id"
            "         and mi.kind = 'refund_refused' and mi.resolved_at is null) as awaiting_operator,"
            " private.erasure_blocker(u.id) as blocker"
            " from public.users u left join public.holding_cells hc on hc.user_id = u.id"
            " where u.leaving_requested_at is not null and u.erased_at is null"
            " order by u.leaving_requested_at limit %s",
            [limit],
        ).fetchall()
    for row in rows:
        try:
            if row["available"] > 0 and row["awaiting_operator"]:
                # Stripe refused a refund to this card: trying again each pass would only repeat
                # the refusal. The operators decide (operator_review, refund_refused); once they
                # resolve the item, the next pass tries again.
                counts["waiting_for_operator"] = counts.get("waiting_for_operator", 0) + 1
            elif row["available"] > 0 and not row["refunding"]:
                holding_cell.withdraw(
                    row["id"],
                    holding_cell.WithdrawRequest(
                        action="withdraw",
                        amount_cents=row["available"],
                        # A new key after each refusal: the same key would answer the refused withdrawal.
                        idempotency_key=f"leaving-{row['id']}-{row['available']}-{row['refused_before']}",
                    ),
                )
                counts["refunded"] = counts.get("refunded", 0) + 1
            elif row["blocker"] is None:
                erase(row["id"])
                counts["erased"] = counts.get("erased", 0) + 1
        except (ApiError, ProviderUnavailable, ProviderRefused, psycopg.Error):
            _logger.warning("leaving account not settled this pass", extra={"fields": {"user_id": str(row["id"])}})
            counts["deferred"] = counts.get("deferred", 0) + 1
        except Exception:
            # One account's fault is that account's alone: the others are settled in this pass.
            _logger.exception("leaving account failed", extra={"fields": {"user_id": str(row["id"])}})
            counts["deferred"] = counts.get("deferred", 0) + 1
    return counts


def erase(user_id: UUID) -> None:
    """Revoke at X, delete the proof files, then delete the Auth user: Supabase's `delete from
    auth.users` runs app.erase_user in the database (the trigger). Anything that fails stops here,
    before the database forgets what it would need to try again."""
    from shared.account import x_oauth
    from shared.providers import storage, x_api

    with db.as_service() as conn:
        files = conn.execute(
            "select file_path from public.submissions where user_id = %s and file_path is not null", [user_id]
        ).fetchall()
    try:
        # Best effort, as in disconnect: the tokens are deleted by the erasure either way. A token
        # that expired, cannot be refreshed or cannot be opened has nothing left to revoke, and
        # must never keep the account (or the accounts after it) from being erased.
        token = x_oauth.access_token(user_id)
        if token is not None:
            x_api.revoke(token)
    except Exception:
        _logger.warning("x revoke skipped before erasure", extra={"fields": {"user_id": str(user_id)}})
    storage.remove([f["file_path"] for f in files])
    # Then the user's whole folder: files uploaded that never became a submission are theirs too.
    storage.remove_folder(str(user_id))
    storage.delete_auth_user(str(user_id))
    with db.as_service() as conn:
        # An account with no Auth user (created by the service alone) is erased here directly.
        left = conn.execute("select 1 from public.users where id = %s and erased_at is null", [user_id]).fetchone()
        if left is not None:
            conn.execute("select app.erase_user(%s)", [user_id])
    _logger.info("account erased")


def export_erasure_log(limit: int = 500) -> int:
    """Copy the erasure log's new entries (tombstone ids) outside the database: a restore from a
    backup made before an erasure re-applies it from there (`threativator reapply-erasures`)."""
    from shared.providers import storage

    with db.as_service() as conn:
        rows = conn.execute(
            "select tombstone_id from public.erasure_log where exported_at is null order by erased_at limit %s",
            [limit],
        ).fetchall()
    exported = 0
    for row in rows:
        storage.log_erasure(str(row["tombstone_id"]))
        with db.as_service() as conn:
            conn.execute(
                "update public.erasure_log set exported_at = now() where tombstone_id = %s", [row["tombstone_id"]]
            )
        exported += 1
    return exported


def reapply_erasures(tombstones: list[str]) -> dict[str, int]:
    """After a restore: erase again every account the log names that the restored database still holds."""
    counts = {"erased": 0, "already_erased": 0}
    for tombstone in tombstones:
        with db.as_service() as conn:
            row = conn.execute("select app.reapply_erasure(%s) as erased", [tombstone]).fetchone()
        counts["erased" if row and row["erased"] else "already_erased"] += 1
    return counts
