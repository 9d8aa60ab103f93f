"""Supabase Database Webhooks: the payload Supabase posts when a row is inserted.

`{"type": "INSERT", "table", "schema", "record": {...}, "old_record": null}`, sent with
X-Webhook-Secret (checked by the HTTP layer against DATABASE_WEBHOOK_SECRET, which makes the
caller the service). grade_submission reacts to `submissions` inserts, send_notification to
`notifications` inserts; the scheduler stays the safety net for anything a webhook missed.
`threativator webhooks` installs them (shared/dev/webhooks_sql.py)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Caller
from shared.errors import bad_request, unauthorized


class WebhookRecord(BaseModel):
    """Only the row's id is read: everything else is read from the database itself."""

    model_config = ConfigDict(extra="ignore")
    id: UUID


class DatabaseWebhook(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    type: Literal["INSERT", "UPDATE", "DELETE"]
    table: str = Field(max_length=63)
    schema_: str = Field(alias="schema", max_length=63)
    record: WebhookRecord | None = None
    old_record: dict[str, Any] | None = None


def is_webhook(value: Any) -> bool:
    """The body has the Database Webhook's shape (used by the functions' discriminators)."""
    return isinstance(value, dict) and "table" in value and "record" in value


def inserted_id(body: DatabaseWebhook, caller: Caller | None, table: str) -> UUID:
    """The id of the row a webhook reports, once its sender is the webhook and its row is ours."""
    if caller is None or not caller.claims.get("webhook"):
        raise unauthorized("a Database Webhook must carry X-Webhook-Secret")
    if body.type != "INSERT" or body.table != table or body.schema_ != "public" or body.record is None:
        raise bad_request(
            f"this function takes INSERT webhooks on public.{table}",
            [{"field": "table", "message": f"expected INSERT on public.{table}", "type": "value"}],
            code="invalid_webhook",
        )
    return body.record.id
