"""Every email (the package: models, delivery, voice) the product sends: written as a row first, then sent at most once.

A notification is unique by its dedupe key (given, or type:subject:recipient).
Asking again answers with the existing row and sends nothing. A row is claimed
(queued -> sending, with a lease) before its one send; the outcome is sent
(with SendGrid's message id), failed (a 4xx, with the reason), or back to
queued with a backoff for the scheduler's next run (429, 5xx, timeouts).
"""

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
from shared.notifications.models import AnyNotification, NotificationRequest, NotificationView, SendNotificationBody

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
