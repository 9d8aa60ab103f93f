"""SendGrid: `POST /v3/mail/send` held against a schema written from SendGrid's published reference.

No package SendGrid publishes carries a machine-readable description (sendgrid-python builds its
bodies by hand), so this schema is written from Twilio SendGrid's "Mail Send" reference: the OpenAPI
document `tsg_mail_v3.json` in twilio/sendgrid-oai (`spec/json/tsg_mail_v3.json`, operation
`SendMail`, request body `PostMailSend`), read with the search tool's fetch. Every object is closed
(SendGrid answers 400 to a field it does not know); required fields, lengths and enums are as there.
One erratum: the reference types the message-level `custom_args` as a string while describing it as
key/value pairs of strings, and SendGrid's own helper library sends an object; it is held as an
object of strings.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError
from werkzeug import Request

OPERATION = "POST /v3/mail/send (SendMail)"


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EmailObject(_Closed):
    email: StrictStr
    name: StrictStr | None = None


class Personalization(_Closed):
    from_: EmailObject | None = Field(default=None, alias="from")
    to: Annotated[list[EmailObject], Field(min_length=1, max_length=1000)]
    cc: Annotated[list[EmailObject], Field(max_length=1000)] | None = None
    bcc: Annotated[list[EmailObject], Field(max_length=1000)] | None = None
    subject: Annotated[StrictStr, Field(min_length=1)] | None = None
    headers: dict[str, Any] | None = None
    substitutions: dict[str, StrictStr] | None = None
    dynamic_template_data: dict[str, Any] | None = None
    custom_args: dict[str, Any] | None = None
    send_at: StrictInt | None = None


class Content(_Closed):
    type: Annotated[StrictStr, Field(min_length=1)]
    value: Annotated[StrictStr, Field(min_length=1)]


class Attachment(_Closed):
    content: Annotated[StrictStr, Field(min_length=1)]
    type: Annotated[StrictStr, Field(min_length=1)] | None = None
    filename: StrictStr
    disposition: Literal["inline", "attachment"] | None = None
    content_id: StrictStr | None = None


class Asm(_Closed):
    group_id: StrictInt
    groups_to_display: Annotated[list[StrictInt], Field(max_length=25)] | None = None


class Enable(_Closed):
    enable: StrictBool | None = None


class Footer(Enable):
    text: StrictStr | None = None
    html: StrictStr | None = None


class MailSettings(_Closed):
    bypass_list_management: Enable | None = None
    bypass_spam_management: Enable | None = None
    bypass_bounce_management: Enable | None = None
    bypass_unsubscribe_management: Enable | None = None
    footer: Footer | None = None
    sandbox_mode: Enable | None = None


class ClickTracking(Enable):
    enable_text: StrictBool | None = None


class OpenTracking(Enable):
    substitution_tag: StrictStr | None = None


class SubscriptionTracking(Enable):
    text: StrictStr | None = None
    html: StrictStr | None = None
    substitution_tag: StrictStr | None = None


class Ganalytics(Enable):
    utm_source: StrictStr | None = None
    utm_medium: StrictStr | None = None
    utm_term: StrictStr | None = None
    utm_content: StrictStr | None = None
    utm_campaign: StrictStr | None = None


class TrackingSettings(_Closed):
    click_tracking: ClickTracking | None = None
    open_tracking: OpenTracking | None = None
    subscription_tracking: SubscriptionTracking | None = None
    ganalytics: Ganalytics | None = None


class MailSend(_Closed):
    personalizations: Annotated[list[Personalization], Field(min_length=1, max_length=1000)]
    from_: EmailObject = Field(alias="from")
    reply_to: EmailObject | None = None
    reply_to_list: Annotated[list[EmailObject], Field(max_length=1000)] | None = None
    subject: Annotated[StrictStr, Field(min_length=1)] | None = None
    content: list[Content] | None = None
    attachments: list[Attachment] | None = None
    template_id: StrictStr | None = None
    headers: dict[str, Any] | None = None
    categories: Annotated[list[Annotated[StrictStr, Field(max_length=255)]], Field(max_length=10)] | None = None
    custom_args: dict[str, StrictStr] | None = None  # the erratum above
    send_at: StrictInt | None = None
    batch_id: StrictStr | None = None
    asm: Asm | None = None
    ip_pool_name: Annotated[StrictStr, Field(min_length=2, max_length=64)] | None = None
    mail_settings: MailSettings | None = None
    tracking_settings: TrackingSettings | None = None


def check(request: Request) -> tuple[str | None, list[str]]:
    if (request.method, request.path) != ("POST", "/v3/mail/send"):
        return None, []
    try:
        body = json.loads(request.get_data() or b"null")
    except ValueError:
        return OPERATION, ["body is not JSON"]
    try:
        MailSend.model_validate(body, by_alias=True)
    except ValidationError as error:
        return OPERATION, [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors(include_url=False)
        ]
    return OPERATION, []
