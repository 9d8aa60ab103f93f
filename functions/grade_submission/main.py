"""grade_submission: grade proof (owner or service), show a witness the proof and record their verdict
(signed link), or vouch."""

from __future__ import annotations

import functions_framework

from shared.http import Auth, Call, endpoint
from shared.proof import grading
from shared.webhooks import DatabaseWebhook


@functions_framework.http
@endpoint("grade_submission", body=grading.GradingRequest, auth=Auth.OPTIONAL, database_webhooks=True)
def grade_submission(
    call: Call[
        grading.GradeRequest
        | grading.WitnessVerdictRequest
        | grading.VouchRequest
        | grading.WitnessProofRequest
        | DatabaseWebhook
    ],
) -> grading.GradeResponse | grading.WitnessProof:
    return grading.handle(call.body, call.caller)
