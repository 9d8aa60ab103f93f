"""trigger_consequence: execute one consequence exactly once (service callers only)."""

from __future__ import annotations

import functions_framework

from shared.commitments import engine
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint("trigger_consequence", body=engine.TriggerRequest, auth=Auth.SERVICE)
def trigger_consequence(call: Call[engine.TriggerRequest]) -> engine.ExecutionResult:
    return engine.execute(call.body.consequence_id)
