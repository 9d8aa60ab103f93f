"""delete_account: leave (the goals are cancelled under the notice period, the money refunded, then
the account erased), cancel leaving, see where it stands, or export everything held about you."""

from __future__ import annotations

import functions_framework

from shared.account import leaving
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint("delete_account", body=leaving.LeaveRequest, auth=Auth.USER)
def delete_account(call: Call[leaving.LeaveRequest]) -> leaving.LeavingStatus | leaving.DataExport:
    if call.body.action == "request":
        return leaving.request(call.user_id)
    if call.body.action == "cancel":
        return leaving.cancel(call.user_id)
    if call.body.action == "export":
        return leaving.export(call.user_id)
    return leaving.status(call.user_id)
