"""Every email (the package: models, delivery, voice) the product sends: written as a row first, then sent at most once.

A notification is unique by its dedupe key (given, or type:subject:recipient).
Asking again answers with the existing row and sends nothing. A row is claimed
(queued -> sending, with a lease) before its one send; the outcome is sent
(with SendGrid's message id), failed (a 4xx, with the reason), or back to
queued with a backoff for the scheduler's next run (429, 5xx, timeouts).

The names below load on first use (PEP 562): a function that only needs the small `html` helper
(the consequence engine, the operator queue) never builds the request models or imports delivery
at cold start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.notifications.delivery import (
        deliver,
        enqueue,
        queue,
        queue_reminders,
        request,
        send_due,
        send_inserted,
        send_queued_about,
    )
    from shared.notifications.models import (
        AnyNotification,
        NotificationRequest,
        NotificationView,
        SendNotificationBody,
    )

_HOMES = {
    "deliver": "delivery",
    "enqueue": "delivery",
    "queue": "delivery",
    "queue_reminders": "delivery",
    "request": "delivery",
    "send_due": "delivery",
    "send_inserted": "delivery",
    "send_queued_about": "delivery",
    "AnyNotification": "models",
    "NotificationRequest": "models",
    "NotificationView": "models",
    "SendNotificationBody": "models",
}

__all__ = [
    "AnyNotification",
    "NotificationRequest",
    "NotificationView",
    "SendNotificationBody",
    "deliver",
    "enqueue",
    "queue",
    "queue_reminders",
    "request",
    "send_due",
    "send_inserted",
    "send_queued_about",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
