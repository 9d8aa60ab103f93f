"""send_notification: queue one email by type, once, and send it (service callers only); or, as
Supabase's Database Webhook for a notifications insert, send that row."""

from __future__ import annotations

import functions_framework

from shared import notifications, webhooks
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint("send_notification", body=notifications.SendNotificationBody, auth=Auth.SERVICE, database_webhooks=True)
def send_notification(
    call: Call[notifications.AnyNotification | webhooks.DatabaseWebhook],
) -> notifications.NotificationView:
    if isinstance(call.body, webhooks.DatabaseWebhook):
        return notifications.send_inserted(webhooks.inserted_id(call.body, call.caller, "notifications"))
    return notifications.request(call.body)
