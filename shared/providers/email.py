"""Email through the SendGrid SDK, pointed at SENDGRID_API_HOST.

Without SENDGRID_API_KEY outside production, nothing leaves the machine: the
message is recorded in the development outbox instead (attachments by name
and size only) and printed as one line.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
from dataclasses import dataclass, field
from typing import Any

from shared.config import ConfigError, get_settings
from shared.log import get_logger
from shared.providers.errors import ProviderRefused, ProviderUnavailable

_logger = get_logger("threativator.email")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes = field(repr=False)


@dataclass
class Email:
    to: list[str]
    subject: str
    text: str
    html: str
    template_id: str | None = None
    dynamic_data: dict[str, Any] | None = None
    attachments: list[Attachment] = field(default_factory=list)
    custom_args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    message_id: str | None
    dry: bool = False


class EmailRetryable(ProviderUnavailable):
    """429, 5xx, timeouts, dropped connections: worth another try later.

    `maybe_sent` is true when the request may have reached SendGrid before the
    answer was lost (a timeout, a dropped connection): SendGrid has no
    idempotency key, so a retry could deliver the message twice.
    """

    def __init__(self, reason: str, retry_after: float | None = None, *, maybe_sent: bool = False) -> None:
        super().__init__(reason, retry_after)
        self.maybe_sent = maybe_sent


class EmailRejected(ProviderRefused):
    """A 4xx from SendGrid: retrying the same message will not help."""


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _reason(status: int, body: bytes | str | None) -> str:
    # Field names and SendGrid's own messages; never the message we sent.
    try:
        errors = json.loads(body or b"{}").get("errors") or []
        parts = [f"{e.get('field') or '-'}: {e.get('message', '')}"[:120] for e in errors[:3]]
    except (ValueError, AttributeError):
        parts = []
    return f"sendgrid {status}" + (": " + "; ".join(parts) if parts else "")


def _mail(email: Email) -> Any:
    from sendgrid.helpers.mail import (
        Attachment as SgAttachment,
    )
    from sendgrid.helpers.mail import (
        CustomArg,
        Disposition,
        FileContent,
        FileName,
        FileType,
        Mail,
    )

    settings = get_settings()
    mail = Mail(
        from_email=settings.email_from,
        to_emails=email.to,
        subject=email.subject,
        plain_text_content=email.text,
        html_content=email.html,
        is_multiple=len(email.to) > 1,
    )
    if email.template_id:
        mail.template_id = email.template_id
        mail.dynamic_template_data = email.dynamic_data or {}
    for item in email.attachments:
        mail.add_attachment(
            SgAttachment(
                FileContent(base64.b64encode(item.content).decode()),
                FileName(item.filename),
                FileType(item.content_type),
                Disposition("attachment"),
            )
        )
    for key, value in email.custom_args.items():
        mail.add_custom_arg(CustomArg(key, value))
    return mail


def _record_dry(email: Email) -> Sent:
    from shared.providers import outbox

    outbox_id = outbox.record(
        "email",
        ", ".join(email.to),
        email.subject,
        {
            "subject": email.subject,
            "text": email.text,
            "template_id": email.template_id,
            "attachments": [{"filename": a.filename, "bytes": len(a.content)} for a in email.attachments],
            "custom_args": email.custom_args,
        },
    )
    return Sent(message_id=f"dry-{outbox_id}", dry=True)


def check_address(address: str) -> None:
    """EmailRejected unless a mail server would take the address (email-validator's syntax rules, no DNS)."""
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        raise EmailRejected("a recipient address is not a valid email address") from None


def _check_recipients(addresses: list[str]) -> None:
    if not addresses:
        raise EmailRejected("the message has no recipient")
    for address in addresses:
        check_address(address)


def send(email: Email) -> Sent:
    """Send one message; raises EmailRetryable or EmailRejected."""
    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient

    _check_recipients(email.to)
    settings = get_settings()
    if settings.sendgrid_api_key is None:
        if settings.providers_dry():
            return _record_dry(email)
        raise ConfigError("SENDGRID_API_KEY is not set")
    try:
        mail = _mail(email).get()  # the request body, built here so the helper's refusals surface here
    except (ValueError, TypeError, KeyError) as error:
        # SendGrid's helper refuses what it cannot parse (an address with a comma, say): no retry helps.
        raise EmailRejected(f"the message could not be built: {type(error).__name__}") from None
    client = SendGridAPIClient(api_key=settings.sendgrid_api_key.get_secret_value(), host=settings.sendgrid_api_host)
    client.client.timeout = settings.sendgrid_timeout_seconds
    try:
        response = client.send(mail)
    except HTTPError as error:
        status = int(error.status_code)
        if status == 429 or status >= 500:
            raise EmailRetryable(f"sendgrid {status}", _retry_after(error.headers)) from None
        raise EmailRejected(_reason(status, error.body)) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        never_connected = isinstance(reason, ConnectionRefusedError | socket.gaierror)
        raise EmailRetryable(f"sendgrid unreachable: {type(reason).__name__}", maybe_sent=not never_connected) from None
    headers = getattr(response, "headers", None)
    message_id = headers.get("X-Message-Id") if headers is not None else None
    return Sent(message_id=message_id)
