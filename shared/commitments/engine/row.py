"""A consequence row as it travels through the engine: typed, not a dict."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from psycopg.rows import RowFactory


@dataclass(frozen=True)
class Consequence:
    id: UUID
    checkpoint_id: UUID
    goal_id: UUID
    user_id: UUID
    consequence_type: str
    monetary_amount: Decimal | None
    charity_destination: str | None
    kompromat_id: UUID | None
    target_contact_id: UUID | None
    execution_status: str
    attempts: int
    next_attempt_at: datetime
    provider_reference: str | None
    last_error: str | None
    earmarked_cents: int
    deferred_reason: str | None

    @classmethod
    def of(cls, **columns: Any) -> Consequence:
        """psycopg's kwargs_row factory: keeps the columns the engine uses, enums as text."""
        kept = {f.name: columns[f.name] for f in fields(cls)}
        for name in ("consequence_type", "execution_status", "charity_destination"):
            if kept[name] is not None:
                kept[name] = str(kept[name])
        return cls(**kept)

    @classmethod
    def row_factory(cls) -> RowFactory[Consequence]:
        """psycopg is imported on first use, never at module import (cold start)."""
        from psycopg.rows import kwargs_row

        return kwargs_row(cls.of)
