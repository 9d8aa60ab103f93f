"""What send_notification accepts: one template_data model per type, and its answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Discriminator, Field, Tag

from shared.webhooks import DatabaseWebhook, is_webhook

DedupeKey = Annotated[str, Field(min_length=1, max_length=300)]


# -----------------------------------------------------------------------------
# Requests: one template_data model per type.
# -----------------------------------------------------------------------------
# Rows hold the type, the ids and the facts of the event; the wording (titles, names,
# amounts) is read from the database when the row is sent. The optional text fields are
# used only when the subject is not in the database (a service caller's own notice).
class DeadlineReminderData(BaseModel):
    checkpoint_id: UUID
    window: Literal["3d", "1d", "1h"]
    goal_title: str | None = Field(default=None, max_length=200)
    checkpoint_title: str | None = Field(default=None, max_length=200)
    deadline: datetime | None = None
    is_final: bool | None = None
    proof_phrase: str | None = Field(default=None, max_length=60, description="The checkpoint's challenge phrase")


class SubmissionResultData(BaseModel):
    submission_id: UUID
    goal_title: str | None = Field(default=None, max_length=200)
    checkpoint_title: str | None = Field(default=None, max_length=200)
    outcome: Literal["passed", "failed", "needs_review", "awaiting_witness", "witness_silent"]
    feedback: str | None = Field(default=None, max_length=2000)


class WitnessRequestData(BaseModel):
    submission_id: UUID
    request_id: UUID
    contact_id: UUID
    goal_title: str | None = Field(default=None, max_length=200)
    checkpoint_title: str | None = Field(default=None, max_length=200)
    owner_name: str | None = Field(default=None, max_length=100)
    proof_phrase: str | None = Field(default=None, max_length=60, description="The checkpoint's challenge phrase")
    replaced: bool = Field(
        default=False, description="The witness was silent too long: their verdict is no longer asked"
    )


class ContactVerificationData(BaseModel):
    contact_id: UUID


class ConsequenceNotificationData(BaseModel):
    consequence_id: UUID
    goal_title: str | None = Field(default=None, max_length=200)
    kind: Literal["monetary", "humiliation"] | None = None
    outcome: Literal[
        "held", "executed", "failed", "insufficient_funds", "moved_to_email", "canceled", "contest_upheld"
    ] = "executed"
    execute_after: datetime | None = Field(default=None, description="For 'held': when it will be carried out")
    amount_cents: int | None = Field(default=None, ge=0)
    charity: str | None = Field(default=None, max_length=100)


class SparedData(BaseModel):
    checkpoint_id: UUID
    goal_title: str | None = Field(default=None, max_length=200)
    checkpoint_title: str | None = Field(default=None, max_length=200)


class StakeReleasedData(BaseModel):
    goal_id: UUID
    goal_title: str | None = Field(default=None, max_length=200)
    amount_cents: int = Field(ge=0)


class GoalChangedData(BaseModel):
    request_id: UUID
    outcome: Literal["scheduled", "applied", "lapsed"]
    goal_title: str | None = Field(default=None, max_length=200)
    change_type: str | None = Field(default=None, max_length=40)
    effective_at: datetime | None = None
    reason: str | None = Field(default=None, max_length=200)


class KompromatExpiredData(BaseModel):
    kompromat_id: UUID
    retention_days: int = Field(ge=0)


class _Base(BaseModel):
    user_id: UUID
    dedupe_key: DedupeKey | None = None


class DeadlineReminder(_Base):
    type: Literal["deadline_reminder"]
    template_data: DeadlineReminderData


class SubmissionResult(_Base):
    type: Literal["submission_result"]
    template_data: SubmissionResultData


class WitnessRequest(_Base):
    type: Literal["witness_request"]
    template_data: WitnessRequestData


class ContactVerification(_Base):
    type: Literal["contact_verification"]
    template_data: ContactVerificationData


class ConsequenceNotification(_Base):
    type: Literal["consequence_notification"]
    template_data: ConsequenceNotificationData


class Spared(_Base):
    type: Literal["spared"]
    template_data: SparedData


class StakeReleased(_Base):
    type: Literal["stake_released"]
    template_data: StakeReleasedData


class GoalChanged(_Base):
    type: Literal["goal_changed"]
    template_data: GoalChangedData


class KompromatExpired(_Base):
    type: Literal["kompromat_expired"]
    template_data: KompromatExpiredData


AnyNotification = (
    DeadlineReminder
    | SubmissionResult
    | WitnessRequest
    | ContactVerification
    | ConsequenceNotification
    | Spared
    | StakeReleased
    | GoalChanged
    | KompromatExpired
)
NotificationRequest = Annotated[AnyNotification, Field(discriminator="type")]


def _type(value: Any) -> str | None:
    if is_webhook(value) or isinstance(value, DatabaseWebhook):
        return "webhook"
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


# What send_notification accepts: a notice to queue and send, or Supabase's Database Webhook for a
# notifications row that was inserted (sent as it is).
SendNotificationBody = Annotated[
    Annotated[DeadlineReminder, Tag("deadline_reminder")]
    | Annotated[SubmissionResult, Tag("submission_result")]
    | Annotated[WitnessRequest, Tag("witness_request")]
    | Annotated[ContactVerification, Tag("contact_verification")]
    | Annotated[ConsequenceNotification, Tag("consequence_notification")]
    | Annotated[Spared, Tag("spared")]
    | Annotated[StakeReleased, Tag("stake_released")]
    | Annotated[GoalChanged, Tag("goal_changed")]
    | Annotated[KompromatExpired, Tag("kompromat_expired")]
    | Annotated[DatabaseWebhook, Tag("webhook")],
    Discriminator(_type),
]

SUBJECT_FIELD = {
    "deadline_reminder": "checkpoint_id",
    "submission_result": "submission_id",
    "witness_request": "request_id",
    "contact_verification": "contact_id",
    "consequence_notification": "consequence_id",
    "spared": "checkpoint_id",
    "stake_released": "goal_id",
    "goal_changed": "request_id",
    "kompromat_expired": "kompromat_id",
}
DATA_MODEL: dict[str, type[BaseModel]] = {
    "deadline_reminder": DeadlineReminderData,
    "submission_result": SubmissionResultData,
    "witness_request": WitnessRequestData,
    "contact_verification": ContactVerificationData,
    "consequence_notification": ConsequenceNotificationData,
    "spared": SparedData,
    "stake_released": StakeReleasedData,
    "goal_changed": GoalChangedData,
    "kompromat_expired": KompromatExpiredData,
}
# Reminders can be muted; notices about consequences and money cannot.
MUTABLE = frozenset({"deadline_reminder"})
TO_CONTACT = frozenset({"witness_request", "contact_verification"})


class NotificationView(BaseModel):
    id: UUID
    type: str
    status: str
    dedupe_key: str
    created: bool
    provider_message_id: str | None = None
    last_error: str | None = None
