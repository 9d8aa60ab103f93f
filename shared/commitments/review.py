"""operator_review's core: the human review queue, and an operator's decisions.

Open items, oldest first: submissions in `needs_review` (vouched fails, grader doubts, witness
fallbacks the grader doubted), contested consequences, and money items (platform losses,
reversed charity transfers, reconciliation differences). Each shows what a decision needs, and
never a user's kompromat content (its type and size only). A decision is recorded once, with a
required reason, audited with the operator's id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Discriminator, Field, StringConstraints, Tag

from shared import db, notifications
from shared.config import get_settings
from shared.errors import forbidden, not_found
from shared.log import get_logger
from shared.money import holding_cell
from shared.notifications import html
from shared.proof import capture as proof
from shared.proof import grading
from shared.proof.grading import ProofShown

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


MoneyAction = Literal["note", "retry_refund", "book_outside_payment", "write_off"]


class ResolveMoney(BaseModel):
    action: Literal["resolve_money"]
    money_item_id: UUID
    reason: Reason = Field(description="What the operator did about it (resent the transfer, wrote it off, ...)")
    resolution: MoneyAction = Field(
        default="note",
        description="note: done elsewhere, as the reason says; retry_refund: refund the item's amount again"
        " from the user's available balance, under new keys; book_outside_payment: the operator paid the user"
        " outside Stripe; write_off: the books take Stripe's figure, the difference goes to platform_losses."
        " Each item's `actions` lists those open to it.",
    )


class ShowRequest(BaseModel):
    action: Literal["show"]
    kind: Literal["submission", "consequence", "money"]
    id: UUID


def _action(value: Any) -> str:
    return str(value.get("action", "list")) if isinstance(value, dict) else str(getattr(value, "action", "list"))


ReviewRequest = Annotated[
    Annotated[ListRequest, Tag("list")]
    | Annotated[DecideSubmission, Tag("decide_submission")]
    | Annotated[DecideConsequence, Tag("decide_consequence")]
    | Annotated[ResolveMoney, Tag("resolve_money")]
    | Annotated[ShowRequest, Tag("show")],
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
    age_hours: float = Field(default=0, description="How long it has waited")
    sla_hours: float = Field(default=0, description="OPERATOR_SLA_HOURS: how long it may wait")
    overdue: bool = Field(default=False, description="Waited longer than the SLA")
    actions: list[str] = Field(default_factory=list, description="The decisions open to an operator")


class ProofSide(BaseModel):
    """One proof as it was captured, for the item view: shown as data, never as markup."""

    submission_id: UUID
    submitted_at: datetime
    captured_at: datetime | None = None
    status: str
    description: str | None = None
    same_user: bool | None = Field(default=None, description="Earlier proof: made by the same user")
    proof: ProofShown | None = None
    unavailable: str | None = Field(default=None, description="Why the proof cannot be shown (changed, missing)")


class ReviewDetail(BaseModel):
    """What a decision needs, side by side. Looking is audited."""

    item: ReviewItem
    proof: ProofSide | None = None
    earlier_proof: ProofSide | None = Field(default=None, description="Reused proof: the earlier one it matched")
    match: dict[str, Any] | None = Field(default=None, description="Reused proof: the check that matched, all checks")
    stale: dict[str, Any] | None = Field(default=None, description="Stale proof: the photo's time and activation")
    goal: dict[str, Any] | None = None
    checkpoints: list[dict[str, Any]] | None = Field(default=None, description="Contests: each deadline, its verdicts")
    ledger_entries: list[dict[str, Any]] | None = None
    stripe_movements: list[dict[str, Any]] | None = None
    stripe_objects: list[dict[str, Any]] | None = Field(
        default=None,
        description="Money items: the Stripe objects involved as Stripe has them now, fetched when shown"
        " ({id, object}, or {id, unavailable} with the reason)",
    )


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
    resolution: MoneyAction | None = Field(default=None, description="Money items: the action taken")


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
where s.status = 'needs_review' and (%(id)s::uuid is null or s.id = %(id)s)
order by s.graded_at nulls first limit %(limit)s"""

_CONSEQUENCES = """
select c.id, c.user_id, c.contested_at as since, g.title as goal_title, c.consequence_type::text as consequence_type,
       (c.monetary_amount * 100)::bigint as amount_cents, c.contest_reason,
       k.file_type as kompromat_type, k.size_bytes as kompromat_bytes
from public.consequences c join public.goals g on g.id = c.goal_id
left join public.kompromat k on k.id = c.kompromat_id
where c.contest_status = 'contested' and c.execution_status = 'held' and (%(id)s::uuid is null or c.id = %(id)s)
order by c.contested_at limit %(limit)s"""


_MONEY = """
select id, user_id, created_at as since, kind::text as why,
       coalesce(details ->> 'stripe_object', source_id) as source_id, cents as amount_cents, stripe_cents, ledger_cents,
       details, app.money_item_actions(kind, source_id) as actions
from public.money_items where resolved_at is null and (%(id)s::uuid is null or id = %(id)s)
order by created_at limit %(limit)s"""


def open_items(limit: int, operator: UUID | None = None) -> ReviewList:
    """Open items, oldest first; the operator's own cases apart (nobody decides their own case).
    Looking is audited, as deciding is."""
    items, owners = _items(limit, None)
    own = [item for item in items if operator is not None and owners.get(item.id) == operator]
    if operator is not None:
        _audit_look(operator, "review_listed", {"items": len(items)})
    return ReviewList(items=[item for item in items if item not in own][:limit], own_cases=own[:limit])


def _audit_look(operator: UUID, action: str, details: dict[str, Any]) -> None:
    with db.as_service() as conn:
        conn.execute(
            "select app.audit('review', %s, %s, %s, %s)", [details.get("id"), action, operator, db.Json(details)]
        )


def _items(limit: int, only: UUID | None) -> tuple[list[ReviewItem], dict[UUID, UUID | None]]:
    params = {"limit": limit, "id": only}
    with db.as_service() as conn:
        submissions = conn.execute(_SUBMISSIONS, params).fetchall()
        consequences = conn.execute(_CONSEQUENCES, params).fetchall()
        money = conn.execute(_MONEY, params).fetchall()
    sla = get_settings().operator_sla_hours
    now = datetime.now(UTC)
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
                actions=["pass", "fail"],
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
                actions=["execute", "cancel"],
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
                actions=list(r["actions"]),
            )
            for r in money
        ]
    )
    owners = {r["id"]: r["user_id"] for r in [*submissions, *consequences, *money]}
    for item in items:
        item.age_hours = round((now - item.since).total_seconds() / 3600, 2)
        item.sla_hours = sla
        item.overdue = item.age_hours > sla
    items.sort(key=lambda item: item.since)
    return items, owners


def show(operator: UUID, body: ShowRequest) -> ReviewDetail:
    """One open item with what a decision needs, side by side; audited as review_viewed."""
    items, _ = _items(1, body.id)
    item = next((i for i in items if i.kind == body.kind), None)
    if item is None:
        raise not_found("no such open review item")
    detail = ReviewDetail(item=item)
    if item.kind == "submission":
        _submission_detail(detail)
    elif item.kind == "consequence":
        _consequence_detail(detail)
    else:
        _money_detail(detail)
    _audit_look(operator, "review_viewed", {"id": str(item.id), "kind": item.kind})
    return detail


def _side(submission_id: UUID, same_user: bool | None = None) -> ProofSide:
    sub = grading.load(submission_id)
    side = ProofSide(
        submission_id=sub.id,
        submitted_at=sub.submitted_at,
        captured_at=sub.captured_at,
        status=sub.status,
        description=sub.description,
        same_user=same_user,
    )
    try:
        side.proof = grading.show_captured(sub)
    except proof.ProofRefused as refused:
        side.unavailable = str(refused)
    return side


def _submission_detail(detail: ReviewDetail) -> None:
    findings = detail.item.findings or {}
    detail.proof = _side(detail.item.id)
    earlier = detail.item.earlier_proof
    if earlier:
        detail.earlier_proof = _side(UUID(str(earlier["submission_id"])), same_user=bool(earlier.get("same_user")))
        detail.match = {"check": earlier.get("check"), "checks": findings.get("checks", {})}
    if isinstance(findings.get("stale"), dict):
        detail.stale = findings["stale"]


def _consequence_detail(detail: ReviewDetail) -> None:
    with db.as_service() as conn:
        goal = conn.execute(
            "select g.id, g.title, g.status::text as status, g.final_deadline, g.charity_destination as charity,"
            " round(g.monetary_stake * 100)::bigint as stake_cents, g.activated_at, g.closed_at,"
            " c.checkpoint_id from public.consequences c join public.goals g on g.id = c.goal_id where c.id = %s",
            [detail.item.id],
        ).fetchone()
        assert goal is not None  # the item is an open consequence
        checkpoints = conn.execute(
            "select cp.id, cp.title, cp.deadline, cp.status::text as status, cp.is_final, cp.stake_cents,"
            " cp.completed_at, cp.missed_at, cp.id = %s as contested,"
            " coalesce((select jsonb_agg(jsonb_build_object('status', s.status, 'submitted_at', s.submitted_at,"
            "   'human_verdict', s.human_verdict, 'captured_at', s.captured_at) order by s.submitted_at)"
            "   from public.submissions s where s.checkpoint_id = cp.id), '[]'::jsonb) as submissions"
            " from public.checkpoints cp where cp.goal_id = %s order by cp.order_position",
            [goal["checkpoint_id"], goal["id"]],
        ).fetchall()
    detail.goal = {k: v for k, v in goal.items() if k != "checkpoint_id"}
    detail.checkpoints = [dict(r) for r in checkpoints]


def _money_detail(detail: ReviewDetail) -> None:
    source = detail.item.stripe_object or ""
    with db.as_service() as conn:
        user = conn.execute("select user_id from public.money_items where id = %s", [detail.item.id]).fetchone()
        # The user's recent ledger, and what Stripe moved about the object or for the user: the item's
        # context, oldest first.
        owner = user["user_id"] if user else None
        entries = conn.execute(
            "select * from (select id, reference, entry_type::text as type, amount_cents, available_delta,"
            " reserved_delta, disputed_delta, goal_id, stripe_object_id, created_at from public.ledger_entries"
            " where user_id = %s or stripe_object_id = %s order by id desc limit 30) e order by id",
            [owner, source],
        ).fetchall()
        movements = conn.execute(
            "select * from (select id, reference, kind, amount_cents, fee_cents, source_id, balance_transaction_id,"
            " created_at from public.stripe_movements where source_id = %s or position(%s in reference) > 0"
            " or user_id = %s order by id desc limit 30) m order by id",
            [source, source or "-", owner],
        ).fetchall()
    detail.ledger_entries = [{k: v for k, v in r.items() if k != "id"} for r in entries]
    detail.stripe_movements = [{k: v for k, v in r.items() if k != "id"} for r in movements]
    detail.stripe_objects = _stripe_objects(detail)


def _stripe_objects(detail: ReviewDetail) -> list[dict[str, Any]]:
    """What Stripe says now of the objects a money item names (at most five): its own object, the
    balance transactions a reconciliation difference listed, a refused refund's payment and refund."""
    from shared.money import holding_cell
    from shared.providers import stripe_api
    from shared.providers.errors import ProviderRefused, ProviderUnavailable

    source = detail.item.stripe_object or ""
    ids = [source, *((detail.item.details or {}).get("balance_transactions") or [])]
    if source.startswith("withdrawal_refund:"):
        ids += holding_cell.refund_stripe_ids(source.split(":", 1)[1])
    shown: list[dict[str, Any]] = []
    for object_id in dict.fromkeys(i for i in ids if i.startswith(tuple(stripe_api.RETRIEVABLE))):
        if len(shown) == 5:
            break
        try:
            found = stripe_api.retrieve(object_id)
        except (ProviderRefused, ProviderUnavailable) as why:
            shown.append({"id": object_id, "unavailable": str(why)})
            continue
        shown.append(
            {"id": object_id, "object": found} if found else {"id": object_id, "unavailable": "Stripe runs dry"}
        )
    return shown


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
    if isinstance(body, ResolveMoney):
        return _resolve(operator, body)
    with db.as_service() as conn:
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


def _resolve(operator: UUID, body: ResolveMoney) -> Decision:
    """Closes a money item by its action, booked in the transaction that closes it."""
    with db.as_service() as conn:
        item = conn.execute(
            "select id, user_id, details from app.resolve_money_item(%s, %s, %s, %s)",
            [body.money_item_id, operator, body.reason, body.resolution],
        ).fetchone()
    assert item is not None  # the function returns the row or raises
    withdrawal = (item["details"] or {}).get("withdrawal_id")
    if withdrawal:
        # The retried refund leaves now; a Stripe outage leaves it planned, and check_deadlines resends
        # it under the same key.
        holding_cell.send_refunds(item["user_id"], UUID(str(withdrawal)))
    return Decision(id=item["id"], status="resolved", decided="resolved", resolution=body.resolution)


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
