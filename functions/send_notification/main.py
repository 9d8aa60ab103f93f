"""send_notification: queue one email by type, once, and send it (service callers only)."""

from __future__ import annotations

import functions_framework

from shared import notifications
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint("send_notification", body=notifications.NotificationRequest, auth=Auth.SERVICE)
def send_notification(call: Call[notifications.AnyNotification]) -> notifications.NotificationView:
    return notifications.request(call.body)
