"""operator_review: the human review queue and its decisions (operators only)."""

from __future__ import annotations

import functions_framework

from shared.commitments import review
from shared.errors import forbidden
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint("operator_review", body=review.ReviewRequest, auth=Auth.USER)
def operator_review(
    call: Call[
        review.ListRequest
        | review.DecideSubmission
        | review.DecideConsequence
        | review.ResolveMoney
        | review.ShowRequest
    ],
) -> review.ReviewList | review.ReviewDetail | review.Decision:
    if call.caller is None or not call.caller.is_operator:
        raise forbidden("operators only")
    if isinstance(call.body, review.ListRequest):
        return review.open_items(call.body.limit, call.user_id)
    if isinstance(call.body, review.ShowRequest):
        return review.show(call.user_id, call.body)
    return review.decide(call.user_id, call.body)
