"""check_deadlines: the scheduler's pass (service_role JWT, or the scheduler's Google OIDC token)."""

from __future__ import annotations

import functions_framework

from shared.commitments import deadlines
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint("check_deadlines", body=deadlines.CheckRequest, auth=Auth.SERVICE)
def check_deadlines(call: Call[deadlines.CheckRequest]) -> deadlines.CheckResult:
    return deadlines.run(call.body)
