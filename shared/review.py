"""operator_review's core: the human review queue, and an operator's decisions.

Open items, oldest first: submissions in `needs_review` (vouched fails, grader doubts, witness
fallbacks the grader doubted), contested consequences, and money items (platform losses,
reversed charity transfers, reconciliation differences). Each shows what a decision needs, and
never a user's kompromat content (its type and size only). A decision is recorded once, with a
required reason, audited with the operator's id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Discriminator, Field, StringConstraints, Tag

from shared import db, notifications
from shared.errors import forbidden
from shared.log import get_logger
from shared.notifications import html

_logger = get_logger("threativator.review")

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class ListRequest(BaseModel):
    action: Literal["list"] = "list"
    limit: int = Field(default=50, ge=1, le=200)


class DecideSubmission(BaseModel):
    action: Literal["decide_submission"]
    submission_id: UUID
    decision: Literal["pass", "fail"]
    reason: Reason


class DecideConsequence(BaseModel):
    action: Literal["decide_consequence"]
    consequence_id: UUID
    decision: Literal["execute", "cancel"]
    reason: Reason


class ResolveMoney(BaseModel):
    action: Literal["resolve_money"]
    money_item_id: UUID
    reason: Reason = Field(description="What the operator did about it (resent the transfer, wrote it off, ...)")


def _action(value: Any) -> str:
    return str(value.get("action", "list")) if isinstance(value, dict) else str(getattr(value, "action", "list"))


ReviewRequest = Annotated[
    Annotated[ListRequest, Tag("list")]
    | Annotated[DecideSubmission, Tag("decide_submission")]
    | Annotated[DecideConsequence, Tag("decide_consequence")]
    | Annotated[ResolveMoney, Tag("resolve_money")],
    Discriminator(_action),
]


class ReviewItem(BaseModel):
    kind: Literal["submission", "consequence", "money"]
    id: UUID
    since: datetime
    why: Literal[
        "vouched",
        "witness_fallback",
        "late_capture",
        "grader_doubt",
        "contested",
        "reused_proof",
        "stale_proof",
        "platform_loss",
        "transfer_reversed",
        "refund_refused",
        "missing_in_ledger",
        "missing_at_stripe",
        "amount_differs",
        "unknown_transaction",
        "dispute_while_committed",
        "dispute_takes_owed",
    ] = Field(
        description="How it came to a person: a vouch, a silent witness, proof captured late in an outage,"
        " proof seen before (reused) or made before the goal began (stale),"
        " the grader's doubt, the user's contest, or a money item's kind"
    )
    goal_title: str | None = None
    rubric: str | None = None
    checkpoint_title: str | None = None
    deadline: datetime | None = None
    submitted_at: datetime | None = None
    proof: dict[str, Any] | None = Field(default=None, description="What was captured, and where")
    earlier_proof: dict[str, Any] | None = Field(
        default=None, description="Reused proof: the earlier submission with the same bytes, side by side"
    )
    findings: dict[str, Any] | None = Field(default=None, description="The grader's result")
    consequence_type: str | None = None
    amount_cents: int | None = None
    kompromat: dict[str, Any] | None = Field(default=None, description="Type and size only, never content")
    contest_reason: str | None = None
    stripe_object: str | None = Field(default=None, description="Money items: the Stripe object concerned")
    stripe_cents: int | None = Field(default=None, description="Money items: what Stripe's records say")
    ledger_cents: int | None = Field(default=None, description="Money items: what the ledger says")
    details: dict[str, Any] | None = None


class ReviewList(BaseModel):
    items: list[ReviewItem] = Field(description="What this operator may decide, oldest first")
    own_cases: list[ReviewItem] = Field(
        default_factory=list,
        description="The operator's own submissions, consequences and money items: listed apart, for"
        " another operator to decide (deciding one is refused with 403)",
    )


class Decision(BaseModel):
    id: UUID
    status: str
    decided: Literal["pass", "fail", "execute", "cancel", "resolved"]


_SUBMISSIONS = """
select s.id, s.user_id, s.graded_at as since, g.title as goal_title, g.grading_rubric as rubric,
       cp.title as checkpoint_title, cp.deadline, s.submitted_at, s.submission_type::text as proof_type,
       s.file_path, s.external_url, s.proof_sha256, s.captured_at, s.ai_analysis_result as findings,
       (select jsonb_build_object('submission_id', e.id, 'same_user', e.user_id = s.user_id,
                                  'checkpoint_id', e.checkpoint_id, 'file_path', e.file_path,
                                  'url', e.external_url, 'submitted_at', e.submitted_at, 'status', e.status,
                                  'check', m.check_name)
        from public.proof_matches m join public.submissions e on e.id = m.earlier_submission_id
        where m.submission_id = s.id) as earlier_proof,
       case when s.vouched_by is not null then 'vouched'
            when exists (select 1 from public.proof_matches m where m.submission_id = s.id) then 'reused_proof'
            when s.ai_analysis_result ? 'stale' then 'stale_proof'
            when coalesce((s.ai_analysis_result ->> 'witness_fallback')::boolean, false) then 'witness_fallback'
            when s.captured_at > cp.deadline then 'late_capture'
            else 'grader_doubt' end as why
from public.submissions s join public.checkpoints cp on cp.id = s.checkpoint_id
join public.goals g on g.id = cp.goal_id
where s.status = 'needs_review' order by s.graded_at nulls first limit %s"""

_CONSEQUENCES = """
select c.id, c.user_id, c.contested_at as since, g.title as goal_title, c.consequence_type::text as consequence_type,
       (c.monetary_amount * 100)::bigint as amount_cents, c.contest_reason,
       k.file_type as kompromat_type, k.size_bytes as kompromat_bytes
from public.consequences c join public.goals g on g.id = c.goal_id
left join public.kompromat k on k.id = c.kompromat_id
where c.contest_status = 'contested' and c.execution_status = 'held' order by c.contested_at limit %s"""


_MONEY = """
select id, user_id, created_at as since, kind::text as why,
       coalesce(details ->> 'stripe_object', source_id) as source_id, cents as amount_cents, stripe_cents, ledger_cents,
       details
from public.money_items where resolved_at is null order by created_at limit %s"""


def open_items(limit: int, operator: UUID | None = None) -> ReviewList:
    """Open items, oldest first; the operator's own cases apart (nobody decides their own case)."""
    with db.as_service() as conn:
        submissions = conn.execute(_SUBMISSIONS, [limit]).fetchall()
        consequences = conn.execute(_CONSEQUENCES, [limit]).fetchall()
        money = conn.execute(_MONEY, [limit]).fetchall()
    items = (
        [
            ReviewItem(
                kind="submission",
                id=r["id"],
                since=r["since"] or r["submitted_at"],
                why=r["why"],
                goal_title=r["goal_title"],
                rubric=r["rubric"],
                checkpoint_title=r["checkpoint_title"],
                deadline=r["deadline"],
                submitted_at=r["submitted_at"],
                proof={
                    "type": r["proof_type"],
                    "file_path": r["file_path"],
                    "url": r["external_url"],
                    "sha256": r["proof_sha256"],
                    "captured_at": r["captured_at"].isoformat() if r["captured_at"] else None,
                },
                findings=r["findings"],
                earlier_proof=r["earlier_proof"],
            )
            for r in submissions
        ]
        + [
            ReviewItem(
                kind="consequence",
                id=r["id"],
                since=r["since"],
                why="contested",
                goal_title=r["goal_title"],
                consequence_type=r["consequence_type"],
                amount_cents=r["amount_cents"],
                kompromat={"type": r["kompromat_type"], "bytes": r["kompromat_bytes"]} if r["kompromat_type"] else None,
                contest_reason=r["contest_reason"],
            )
            for r in consequences
        ]
        + [
            ReviewItem(
                kind="money",
                id=r["id"],
                since=r["since"],
                why=r["why"],
                amount_cents=r["amount_cents"],
                stripe_object=r["source_id"],
                stripe_cents=r["stripe_cents"],
                ledger_cents=r["ledger_cents"],
                details=r["details"],
            )
            for r in money
        ]
    )
    owners = {r["id"]: r["user_id"] for r in [*submissions, *consequences, *money]}
    items.sort(key=lambda item: item.since)
    own = [item for item in items if operator is not None and owners.get(item.id) == operator]
    return ReviewList(items=[item for item in items if item not in own][:limit], own_cases=own[:limit])


def decide(operator: UUID, body: DecideSubmission | DecideConsequence | ResolveMoney) -> Decision:
    """One decision. Nobody decides their own case: the database refuses it, and the attempt is
    audited (in its own transaction, since the refused one rolls back)."""
    import psycopg

    try:
        return _decide(operator, body)
    except psycopg.errors.InsufficientPrivilege:
        subject = getattr(body, "submission_id", None) or getattr(body, "consequence_id", None)
        subject = subject or getattr(body, "money_item_id", None)
        with db.as_service() as conn:
            conn.execute(
                "select app.audit('operator', %s, 'own_case_refused', %s, jsonb_build_object('action', %s::text,"
                " 'subject_id', %s::text))",
                [operator, operator, body.action, subject],
            )
        _logger.warning("operator refused their own case", extra={"fields": {"action": body.action}})
        raise forbidden("an operator cannot decide their own case") from None


def _decide(operator: UUID, body: DecideSubmission | DecideConsequence | ResolveMoney) -> Decision:
    with db.as_service() as conn:
        if isinstance(body, ResolveMoney):
            item = conn.execute(
                "select id from app.resolve_money_item(%s, %s, %s)", [body.money_item_id, operator, body.reason]
            ).fetchone()
            assert item is not None  # the function returns the row or raises
            return Decision(id=item["id"], status="resolved", decided="resolved")
        if isinstance(body, DecideSubmission):
            row = conn.execute(
                "select id, status::text as status from app.decide_submission(%s, %s, %s, %s)",
                [body.submission_id, operator, body.decision, body.reason],
            ).fetchone()
        else:
            row = conn.execute(
                "select id, execution_status::text as status from app.decide_consequence(%s, %s, %s, %s)",
                [body.consequence_id, operator, body.decision, body.reason],
            ).fetchone()
    assert row is not None  # the functions return the row or raise
    notifications.send_queued_about([row["id"]])
    return Decision(id=row["id"], status=row["status"], decided=body.decision)


class OverdueItem(BaseModel):
    kind: Literal["submission", "consequence", "money"]
    id: UUID
    since: datetime


def overdue(sla_hours: float) -> list[OverdueItem]:
    """Open items waiting longer than the SLA, oldest first (ids and times only: no personal data)."""
    with db.as_service() as conn:
        rows = conn.execute(
            "select 'submission' as kind, id, coalesce(graded_at, submitted_at) as since from public.submissions"
            " where status = 'needs_review' and coalesce(graded_at, submitted_at) < now() - %s * interval '1 hour'"
            " union all select 'consequence', id, contested_at from public.consequences"
            " where contest_status = 'contested' and execution_status = 'held'"
            " and contested_at < now() - %s * interval '1 hour'"
            " union all select 'money', id, created_at from public.money_items"
            " where resolved_at is null and created_at < now() - %s * interval '1 hour' order by since limit 500",
            [sla_hours, sla_hours, sla_hours],
        ).fetchall()
    return [OverdueItem(kind=r["kind"], id=r["id"], since=r["since"]) for r in rows]


def email_overdue(items: list[OverdueItem], address: str) -> int:
    """Tell the operators, once per item, what has waited past the SLA. Returns how many were new."""
    from shared.providers import email as email_provider

    with db.as_service() as conn:
        told = conn.execute(
            "select entity_id from public.audit_log where entity = 'review' and action = 'sla_reported'"
            " and entity_id = any(%s)",
            [[item.id for item in items]],
        ).fetchall()
    known = {r["entity_id"] for r in told}
    new = [item for item in items if item.id not in known]
    if not new:
        return 0
    lines = [f"{item.kind} {item.id}, waiting since {item.since.isoformat()}" for item in new]
    text = "These review items have waited longer than the SLA:\n\n" + "\n".join(lines) + "\n"
    email_provider.send(
        email_provider.Email(
            to=[address],
            subject=f"{len(new)} review item(s) past the SLA",
            text=text,
            html=html.render("operator_sla.html", lines=lines),
            custom_args={"type": "operator_sla"},
        )
    )
    with db.as_service() as conn:
        for item in new:
            conn.execute(
                "select app.audit('review', %s, 'sla_reported', null, jsonb_build_object('kind', %s::text))",
                [item.id, item.kind],
            )
    return len(new)
