"""check_deadlines' core: detect missed deadlines in batches, queue and send
reminders, then dispatch every due consequence to trigger_consequence.

Any number of overlapping runs is safe: detection takes rows with skip locked,
and each consequence is claimed by exactly one executor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from shared import db
from shared.config import get_settings
from shared.log import get_logger

_logger = get_logger("threativator.deadlines")


class CheckRequest(BaseModel):
    source: str | None = Field(default=None, max_length=50, description="Who is calling: pg_cron, scheduler, dev")


class CheckResult(BaseModel):
    detected: int = 0
    checkpoints_missed: int = 0
    spared: int = 0
    goals_failed: int = 0
    consequences_created: int = 0
    dispatched: int = 0
    failures: int = 0
    deferred: int = 0
    reminders_queued: int = 0
    notifications: dict[str, int] = Field(default_factory=dict)
    overdue_reviews: list[dict[str, str]] = Field(
        default_factory=list, description="Review items waiting past OPERATOR_SLA_HOURS (kind, id, since)"
    )
    witness_fallbacks: int = Field(default=0, description="Silent witnesses replaced by the grader this pass")
    released: int = Field(default=0, description="Held consequences whose contest window ended uncontested")
    kompromat_expired: int = Field(default=0, description="Kompromat destroyed after its retention this pass")
    refunds_resumed: int = Field(
        default=0, description="Withdrawals whose refunds a Stripe outage left planned, resent this pass"
    )
    leaving: dict[str, int] = Field(
        default_factory=dict, description="Leaving accounts refunded, erased or deferred this pass"
    )
    goal_changes: int = Field(default=0, description="Goal changes whose notice period ended, applied or lapsed")
    regraded: dict[str, int] = Field(
        default_factory=dict, description="Submissions re-graded after an outage, by resulting status"
    )
    reconciliation: dict[str, Any] | None = Field(
        default=None, description="The daily reconciliation with Stripe, when it ran in this pass"
    )
    keys: dict[str, Any] | None = Field(
        default=None,
        description="The master keys: the active one, whether its rotation is due (and by when), data keys"
        " re-wrapped under it this pass, and retired keys that must now be destroyed",
    )
    erasures_logged: int = Field(
        default=0, description="Erasure log entries (tombstone ids) copied outside the database this pass"
    )
    stage_failures: list[str] = Field(default_factory=list, description="Stages that failed in this pass")


def add_detected(result: CheckResult, counts: dict[str, int]) -> None:
    result.detected += counts.get("detected", 0)
    result.checkpoints_missed += counts.get("checkpoints_missed", 0)
    result.spared += counts.get("spared", 0)
    result.goals_failed += counts.get("goals_failed", 0)
    result.consequences_created += counts.get("consequences_created", 0)


def detect(result: CheckResult, deadline: float) -> None:
    settings = get_settings()
    while True:
        with db.as_service() as conn:
            row = conn.execute(
                "select app.detect_missed_deadlines(%s, %s, %s, %s) as counts",
                [
                    settings.detection_batch_size,
                    settings.roulette_odds_numerator,
                    settings.roulette_odds_denominator,
                    timedelta(hours=settings.contest_window_hours),
                ],
            ).fetchone()
        counts: dict[str, int] = row["counts"] if row else {}
        add_detected(result, counts)
        full = max(counts.get("checkpoints_missed", 0), counts.get("goals_failed", 0)) >= settings.detection_batch_size
        if not full or time.monotonic() > deadline:
            return


def due_consequences(limit: int) -> list[UUID]:
    with db.as_service() as conn:
        rows = conn.execute(
            "select id from public.consequences where (execution_status = 'pending' and next_attempt_at <= now())"
            " or (execution_status = 'executing' and lease_expires_at < now()) order by next_attempt_at limit %s",
            [limit],
        ).fetchall()
    return [r["id"] for r in rows]


def _credential() -> str:
    settings = get_settings()
    if settings.dispatch_with_id_token and settings.trigger_consequence_url:
        from google.auth.transport import requests as google_requests
        from google.oauth2 import id_token

        token: str = id_token.fetch_id_token(  # type: ignore[no-untyped-call]
            google_requests.Request(), settings.trigger_consequence_url
        )
        return token
    credential = settings.service_credential()  # a secret key, else the legacy service_role key
    if credential is not None:
        return credential
    from shared.auth import mint_token

    return mint_token(None, role="service_role", ttl_seconds=300)


def _dispatch_one(consequence_id: UUID, credential: str) -> tuple[str, float | None]:
    """('ok' | 'failed' | 'deferred', retry_after)."""
    settings = get_settings()
    if not settings.trigger_consequence_url:
        # No function URL (local development): execute in this process.
        from shared.commitments import engine
        from shared.errors import ApiError

        try:
            engine.execute(consequence_id)
        except ApiError as error:
            return ("ok" if error.status == 409 else "failed"), None
        return "ok", None
    import httpx

    try:
        response = httpx.post(
            settings.trigger_consequence_url,
            json={"consequence_id": str(consequence_id)},
            headers={"Authorization": f"Bearer {credential}"},
            timeout=settings.dispatch_timeout_seconds,
        )
    except httpx.HTTPError:
        return "failed", None
    if response.status_code in (200, 409):
        return "ok", None
    if response.status_code in (429, 503):
        try:
            return "deferred", float(response.headers.get("Retry-After", "30"))
        except ValueError:
            return "deferred", 30.0
    return "failed", None


class Pace:
    """Starts at most `per_second` calls a second, across threads (0: no limit). Dispatch stays under
    Stripe's rate limit rather than meeting it: a 429 costs the consequence a backoff."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


def dispatch(result: CheckResult, deadline: float) -> None:
    settings = get_settings()
    with db.as_service() as conn:
        # Held consequences whose contest window ended uncontested are due from now.
        released = conn.execute("select app.release_held_consequences() as n").fetchone()
    result.released = int(released["n"]) if released else 0
    ids = due_consequences(settings.dispatch_limit)
    if not ids:
        return
    from concurrent.futures import ThreadPoolExecutor

    credential = _credential()
    lock = threading.Lock()
    backoff_until = [0.0]
    pace = Pace(settings.dispatch_per_second)

    def run_one(consequence_id: UUID) -> str:
        pace.wait()
        # Honour Retry-After: once the executor asks us to wait, the rest waits for the next run.
        with lock:
            if time.monotonic() < backoff_until[0] or time.monotonic() > deadline:
                return "deferred"
        outcome, retry_after = _dispatch_one(consequence_id, credential)
        if retry_after:
            with lock:
                backoff_until[0] = max(backoff_until[0], time.monotonic() + retry_after)
        return outcome

    with ThreadPoolExecutor(max_workers=settings.dispatch_concurrency) as pool:
        for outcome in pool.map(run_one, ids):
            if outcome == "ok":
                result.dispatched += 1
            elif outcome == "failed":
                result.failures += 1
            else:
                result.deferred += 1


def run(_: CheckRequest | None = None) -> CheckResult:
    """One pass. Each stage runs even when an earlier one failed; the answer names the stages that did.

    Notices go last, so what detection and dispatch queued in this pass is sent in this pass."""
    from shared import notifications

    settings = get_settings()
    deadline = time.monotonic() + settings.check_deadlines_time_budget_seconds
    result = CheckResult()

    def reminders() -> None:
        result.reminders_queued = notifications.queue_reminders()

    def send() -> None:
        result.notifications = notifications.send_due()

    def regrade() -> None:
        from shared.proof import grading

        result.witness_fallbacks = grading.witness_fallback_due()
        result.regraded = grading.regrade_due(deadline)

    def review_sla() -> None:
        from shared.commitments import review

        items = review.overdue(settings.operator_sla_hours)
        result.overdue_reviews = [
            {"kind": item.kind, "id": str(item.id), "since": item.since.isoformat()} for item in items
        ]
        if items:
            _logger.warning("review items past the SLA", extra={"fields": {"count": len(items)}})
            if settings.operator_email:
                review.email_overdue(items, settings.operator_email)

    def reconcile() -> None:
        from shared.money import reconciliation

        done = reconciliation.run()
        result.reconciliation = done.model_dump() if done.ran else None

    def refunds() -> None:
        from shared.money import holding_cell

        result.refunds_resumed = holding_cell.resume_planned_refunds()

    def leaving() -> None:
        from shared.account import leaving as accounts

        result.leaving = accounts.settle_due()
        with db.as_service() as conn:
            row = conn.execute("select app.expire_kompromat(%s) as n", [settings.kompromat_retention_days]).fetchone()
        result.kompromat_expired = int(row["n"]) if row else 0
        with db.as_service() as conn:
            purged = conn.execute(
                "select app.purge_tombstones(%s) as n", [settings.financial_record_retention_years]
            ).fetchone()
        if purged and purged["n"]:
            result.leaving["tombstones_purged"] = int(purged["n"])

    def keys() -> None:
        from shared.account import keys as master_keys

        if settings.kompromat_keys is not None:
            result.keys = master_keys.run()

    def erasure_log() -> None:
        from shared.account import leaving as accounts

        result.erasures_logged = accounts.export_erasure_log()

    def goal_changes() -> None:
        from shared.commitments import goal_changes as changes

        result.goal_changes, judged = changes.apply_due()
        add_detected(result, judged)  # deadlines judged as they stood before a change took effect

    stages: list[tuple[str, Callable[[], None]]] = [
        # Changes whose notice ran out apply before detection looks at the deadlines they move.
        ("goal_changes", goal_changes),
        # Then: proof an outage kept from its verdict is graded before detection looks.
        ("regrading", regrade),
        ("detection", lambda: detect(result, deadline)),
        ("reminders", reminders),
        ("dispatch", lambda: dispatch(result, deadline)),
        # Refunds a Stripe outage left planned are resent (same keys), before leaving accounts wait on them.
        ("refunds", refunds),
        # Leaving accounts: what is left is refunded, then a settled account is erased; kompromat
        # past its retention is destroyed (its owner told by the notifications stage below).
        ("leaving", leaving),
        # Erasure reaches backups: the log leaves the database, and the master keys rotate out.
        ("erasure_log", erasure_log),
        ("keys", keys),
        ("notifications", send),
        # At most once a day: the ledger against Stripe's balance; differences join the review queue.
        ("reconciliation", reconcile),
        ("review_sla", review_sla),
    ]
    for name, stage in stages:
        try:
            stage()
        except Exception:
            _logger.exception("deadline check stage failed", extra={"fields": {"stage": name}})
            result.stage_failures.append(name)
    fields: dict[str, Any] = result.model_dump()
    _logger.info("deadline check", extra={"fields": fields})
    with db.as_service() as conn:
        conn.execute("select app.audit('scheduler', null, 'run', null, %s)", [db.Json(fields)])
    return result
