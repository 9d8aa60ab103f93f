"""contest_consequence's core: the owner of a held consequence says why it is wrong, once.

A contest only delays: the consequence then waits for an operator's decision (app.decide_consequence),
and an uncontested one is dispatched when its window (CONTEST_WINDOW_HOURS) ends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from shared import db

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class ContestRequest(BaseModel):
    consequence_id: UUID
    reason: Reason = Field(description="Why this consequence is wrong; required, at most 2,000 characters")


class ContestResponse(BaseModel):
    consequence_id: UUID
    execution_status: str
    contest_status: str
    execute_after: datetime | None = Field(description="When it would have run had it not been contested")
    contested_at: datetime | None


def contest(user_id: UUID, body: ContestRequest) -> ContestResponse:
    with db.as_service() as conn:
        row = conn.execute(
            "select id, execution_status::text, contest_status::text, execute_after, contested_at"
            " from app.contest_consequence(%s, %s, %s)",
            [body.consequence_id, user_id, body.reason],
        ).fetchone()
    assert row is not None  # the function returns the row or raises
    return ContestResponse(
        consequence_id=row["id"],
        execution_status=row["execution_status"],
        contest_status=row["contest_status"],
        execute_after=row["execute_after"],
        contested_at=row["contested_at"],
    )
