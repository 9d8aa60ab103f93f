"""A notification row as it travels from the queue through the sender and the renderer: typed, not a dict."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from psycopg.rows import RowFactory


@dataclass(frozen=True)
class Notification:
    id: UUID
    type: str
    user_id: UUID
    recipient_contact_id: UUID | None
    dedupe_key: str
    template_data: dict[str, Any]
    status: str
    attempts: int
    provider_message_id: str | None
    last_error: str | None

    @classmethod
    def of(cls, **columns: Any) -> Notification:
        """psycopg's kwargs_row factory: keeps the columns the sender uses, enums as text."""
        kept = {f.name: columns[f.name] for f in fields(cls)}
        kept["type"], kept["status"] = str(kept["type"]), str(kept["status"])
        return cls(**kept)

    @classmethod
    def row_factory(cls) -> RowFactory[Notification]:
        """psycopg is imported on first use, never at module import (cold start)."""
        from psycopg.rows import kwargs_row

        return kwargs_row(cls.of)
