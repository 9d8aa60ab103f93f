"""schemathesis against openapi.json, for every function, with valid tokens and without:
no 5xx, and every response matches the documented schema. FUZZ_EXAMPLES sets the
examples per function (50 in `make test`, 500 in `make soak`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pytest_httpserver import HTTPServer
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from shared.auth import mint_token
from shared.dev.devserver import build_app
from tests import factories as f
from tests.fakes import FakeGemini, FakeSendGrid, FakeStorage, FakeStripe, FakeX

SPEC = Path(__file__).resolve().parents[2] / "openapi.json"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
schema = schemathesis.openapi.from_path(str(SPEC))
APP = None


def app() -> Any:
    global APP
    if APP is None:
        APP = build_app()
    return APP


@pytest.fixture
def stand_ins(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, database: str) -> Iterator[None]:
    base = httpserver.url_for("/").rstrip("/")
    for name, value in {
        "STRIPE_API_BASE": base,
        "STRIPE_SECRET_KEY": "sk_test_fuzz",
        "STRIPE_WEBHOOK_SECRET": "whsec_fuzz",
        "SENDGRID_API_HOST": base,
        "SENDGRID_API_KEY": "SG.fuzz",
        "GEMINI_API_BASE": base,
        "GEMINI_API_KEY": "fuzz",
        "SUPABASE_SERVICE_ROLE_KEY": "fuzz-service-key",
        "X_API_BASE": base,
        "X_CLIENT_ID": "fuzz",
        "X_REDIRECT_URI": "https://app/cb",
        "CHARITY_ACCOUNTS": json.dumps({"unicef": "a"}),
        "NOTIFICATION_RETRY_BUDGET_SECONDS": "0",
        "STRIPE_TIMEOUT_SECONDS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    FakeStripe(server=httpserver).install()
    FakeSendGrid(server=httpserver).install()
    FakeGemini(
        server=httpserver,
        default={"passed": False, "feedback": "no", "confidence": 0.9, "criteria": [], "instructions_in_proof": False},
    ).install()
    FakeStorage(httpserver).install()
    FakeX(server=httpserver).install()
    yield


def _token_for(path: str, owner: Any) -> str:
    if path in ("/check_deadlines", "/trigger_consequence", "/send_notification"):
        return mint_token(None, role="service_role")
    return mint_token(str(f.user(owner, "fuzz")))


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@settings(max_examples=EXAMPLES // 2, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@pytest.mark.parametrize("authenticated", [True, False], ids=["token", "no-token"])
def test_fuzz_no_5xx_and_responses_match_the_schema(
    case: Any, authenticated: bool, stand_ins: None, owner: Any
) -> None:
    headers = {"Authorization": f"Bearer {_token_for(case.path, owner)}"} if authenticated else {}
    case.call_and_validate(app=app(), headers=headers, checks=CHECKS)
