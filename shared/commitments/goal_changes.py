"""change_goal's core: the akrasia horizon.

Easing a commitment (a pause, a later deadline, a lower stake, a removed checkpoint, a
cancelled goal) takes effect CHANGE_NOTICE_DAYS after it is asked for, and never touches a
deadline inside that notice period; tightening it (a higher stake, a new checkpoint, an earlier
deadline) takes effect at once. The rules live in `app.request_goal_change` and
`private.apply_goal_change` (sql/functions/goal_changes.sql); this module parses, authorizes and
answers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared import db, notifications
from shared.config import get_settings
from shared.errors import ApiError

MAX_STAKE_CENTS = 100_000_000
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Pause(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    type: Literal["pause"]
    from_: AwareDatetime = Field(alias="from", description="When the pause starts (after the notice period)")
    until: AwareDatetime = Field(description="When it ends: every deadline from its start on moves by its length")


class ExtendDeadline(BaseModel):
    type: Literal["extend_deadline"]
    checkpoint_id: UUID = Field(description="A checkpoint of the goal, or its final deadline's checkpoint")
    new_deadline: AwareDatetime


class LowerStake(BaseModel):
    type: Literal["lower_stake"]
    new_amount_cents: int = Field(ge=0, le=MAX_STAKE_CENTS)


class RemoveCheckpoint(BaseModel):
    type: Literal["remove_checkpoint"]
    checkpoint_id: UUID


class CancelGoal(BaseModel):
    type: Literal["cancel_goal"]


class RaiseStake(BaseModel):
    type: Literal["raise_stake"]
    new_amount_cents: int = Field(gt=0, le=MAX_STAKE_CENTS)


class AddCheckpoint(BaseModel):
    type: Literal["add_checkpoint"]
    title: Title
    deadline: AwareDatetime
    requirements: str | None = Field(default=None, max_length=2000)


class EarlierDeadline(BaseModel):
    type: Literal["earlier_deadline"]
    checkpoint_id: UUID
    new_deadline: AwareDatetime


Change = Annotated[
    Pause | ExtendDeadline | LowerStake | RemoveCheckpoint | CancelGoal | RaiseStake | AddCheckpoint | EarlierDeadline,
    Field(discriminator="type"),
]
EASING = frozenset({"pause", "extend_deadline", "lower_stake", "remove_checkpoint", "cancel_goal"})


class RequestChange(BaseModel):
    action: Literal["request"]
    goal_id: UUID
    change: Change


class CancelRequest(BaseModel):
    action: Literal["cancel_request"]
    request_id: UUID


class ListRequests(BaseModel):
    action: Literal["list"]
    goal_id: UUID


class Activate(BaseModel):
    action: Literal["activate"]
    goal_id: UUID = Field(description="A draft of the caller's, with its checkpoints planned")


ChangeGoalRequest = Annotated[RequestChange | CancelRequest | ListRequests | Activate, Field(discriminator="action")]


class ChangeView(BaseModel):
    id: UUID
    goal_id: UUID
    type: str
    change: dict[str, Any]
    status: Literal["pending", "applied", "canceled", "lapsed"]
    requested_at: datetime
    effective_at: datetime = Field(description="When it takes (or took) effect: at once, or after the notice period")
    applied_at: datetime | None = None
    canceled_at: datetime | None = None
    outcome: dict[str, Any] = Field(default_factory=dict, description="What moved, or why it lapsed")


class ChangeList(BaseModel):
    goal_id: UUID
    notice_days: float
    requests: list[ChangeView]


_REQUEST = (
    "select r.id, r.goal_id, r.change_type::text as type, r.change, r.status::text as status, r.requested_at,"
    " r.effective_at, r.applied_at, r.canceled_at, r.outcome from app.request_goal_change(%s, %s, %s, %s, %s, %s) r"
)
_CANCEL = (
    "select r.id, r.goal_id, r.change_type::text as type, r.change, r.status::text as status, r.requested_at,"
    " r.effective_at, r.applied_at, r.canceled_at, r.outcome from app.cancel_goal_change(%s, %s) r"
)
_LIST = (
    "select r.id, r.goal_id, r.change_type::text as type, r.change, r.status::text as status, r.requested_at,"
    " r.effective_at, r.applied_at, r.canceled_at, r.outcome from public.goal_change_requests r"
    " where r.goal_id = %s order by r.requested_at"
)


def request(user_id: UUID, body: RequestChange) -> ChangeView:
    change = body.change.model_dump(mode="json", by_alias=True, exclude={"type"})
    settings = get_settings()
    notice = timedelta(days=settings.change_notice_days)
    with db.as_service() as conn:
        row = conn.execute(
            _REQUEST,
            [body.goal_id, user_id, body.change.type, db.Json(change), notice, settings.max_checkpoints_per_goal],
        ).fetchone()
    assert row is not None  # the function returns the row or raises
    notifications.send_queued_about([row["id"]])
    return ChangeView(**row)


class ActivePart(BaseModel):
    checkpoint_id: UUID
    title: str
    deadline: datetime
    is_final: bool
    stake_cents: int = Field(description="What this deadline puts at stake, fixed now")


class Activated(BaseModel):
    goal_id: UUID
    status: Literal["active"]
    activated_at: datetime
    stake_cents: int = Field(description="Reserved from the holding cell's available balance")
    checkpoints: list[ActivePart]


def activate(user_id: UUID, body: Activate) -> Activated:
    """The owner commits: the stake is reserved from the available balance (refused when short) and
    what each deadline puts at stake is fixed (app.activate_goal)."""
    with db.as_service() as conn:
        goal = conn.execute(
            "select id, activated_at, round(monetary_stake * 100)::bigint as stake_cents"
            " from app.activate_own_goal(%s, %s, %s)",
            [body.goal_id, user_id, get_settings().max_checkpoints_per_goal],
        ).fetchone()
        assert goal is not None  # the function returns the row or raises
        parts = conn.execute(
            "select id as checkpoint_id, title, deadline, is_final, stake_cents from public.checkpoints"
            " where goal_id = %s order by order_position",
            [body.goal_id],
        ).fetchall()
    return Activated(
        goal_id=goal["id"],
        status="active",
        activated_at=goal["activated_at"],
        stake_cents=goal["stake_cents"],
        checkpoints=[ActivePart(**p) for p in parts],
    )


def cancel(user_id: UUID, body: CancelRequest) -> ChangeView:
    with db.as_service() as conn:
        row = conn.execute(_CANCEL, [body.request_id, user_id]).fetchone()
    assert row is not None
    return ChangeView(**row)


def listing(user_id: UUID, body: ListRequests) -> ChangeList:
    """The goal's requests, read as the user: RLS shows only their own."""
    with db.as_user(user_id) as conn:
        goal = conn.execute("select id from public.goals where id = %s", [body.goal_id]).fetchone()
        if goal is None:
            raise ApiError(404, "not_found", "no such goal")
        rows = conn.execute(
            _LIST,
            [body.goal_id],
        ).fetchall()
    return ChangeList(
        goal_id=body.goal_id,
        notice_days=get_settings().change_notice_days,
        requests=[ChangeView(**r) for r in rows],
    )


def apply_due(limit: int = 100) -> tuple[int, dict[str, int]]:
    """check_deadlines' stage: easing requests whose notice ran out take effect, each after the goal's
    deadlines that fell before its effective time are judged (with the pass's odds and contest window).
    Returns how many were applied (or lapsed) and what that judging detected."""
    settings = get_settings()
    with db.as_service() as conn:
        row = conn.execute(
            "select app.apply_due_goal_changes(%s, %s, %s, %s) as r",
            [
                limit,
                settings.roulette_odds_numerator,
                settings.roulette_odds_denominator,
                timedelta(hours=settings.contest_window_hours),
            ],
        ).fetchone()
    if row is None:
        return 0, {}
    return int(row["r"]["applied"]), {k: int(v) for k, v in row["r"]["detected"].items()}
