"""check_deadlines: the scheduler's pass (service_role JWT, or the scheduler's Google OIDC token)."""

from __future__ import annotations

import functions_framework

from shared import scheduler
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint("check_deadlines", body=scheduler.CheckRequest, auth=Auth.SERVICE)
def check_deadlines(call: Call[scheduler.CheckRequest]) -> scheduler.CheckResult:
    return scheduler.run(call.body)
