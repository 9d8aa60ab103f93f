"""change_goal: the owner activates a draft, eases an active goal after a notice period, or tightens it at once."""

from __future__ import annotations

import functions_framework

from shared.commitments import goal_changes
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint("change_goal", body=goal_changes.ChangeGoalRequest, auth=Auth.USER)
def change_goal(
    call: Call[
        goal_changes.RequestChange | goal_changes.CancelRequest | goal_changes.ListRequests | goal_changes.Activate
    ],
) -> goal_changes.ChangeView | goal_changes.ChangeList | goal_changes.Activated:
    if isinstance(call.body, goal_changes.Activate):
        return goal_changes.activate(call.user_id, call.body)
    if isinstance(call.body, goal_changes.RequestChange):
        return goal_changes.request(call.user_id, call.body)
    if isinstance(call.body, goal_changes.CancelRequest):
        return goal_changes.cancel(call.user_id, call.body)
    return goal_changes.listing(call.user_id, call.body)
