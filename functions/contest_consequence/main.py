"""contest_consequence: the owner of a held consequence contests it, once, with a reason."""

from __future__ import annotations

import functions_framework

from shared.commitments import contests
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint("contest_consequence", body=contests.ContestRequest, auth=Auth.USER)
def contest_consequence(call: Call[contests.ContestRequest]) -> contests.ContestResponse:
    return contests.contest(call.user_id, call.body)
