"""The contract checks refuse what each provider would: an unknown parameter, a missing required one,
a bad enum value, an operation no description covers. Requests are built as the SDKs send them."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from werkzeug import Request
from werkzeug.test import EnvironBuilder

from tests import contracts
from tests.contracts import stripe_contract


def form(path: str, data: dict[str, str], method: str = "POST", **headers: str) -> Request:
    sent: dict[str, str] = {"Stripe-Version": stripe_contract.pinned_version()} if path.startswith("/v1/") else {}
    sent.update(headers)
    if method == "GET":
        return EnvironBuilder(path=path, method="GET", query_string=data, headers=list(sent.items())).get_request()
    return EnvironBuilder(path=path, method=method, data=data, headers=list(sent.items())).get_request()


def body(path: str, payload: Any) -> Request:
    return EnvironBuilder(
        path=path, method="POST", data=json.dumps(payload), content_type="application/json"
    ).get_request()


def problems(request: Request) -> list[str]:
    finding = contracts.check(request)
    assert finding is not None
    return list(finding.problems)


TRANSFER = {"amount": "5000", "currency": "usd", "destination": "acct_1", "transfer_group": "goal_1"}
GRADE = {
    "contents": [
        {"role": "user", "parts": [{"text": "proof"}, {"inlineData": {"mimeType": "image/png", "data": "aGk="}}]}
    ],
    "systemInstruction": {"parts": [{"text": "you grade"}]},
    "generationConfig": {
        "temperature": 0.1,
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"passed": {"type": "BOOLEAN"}}},
        "thinkingConfig": {"thinkingBudget": 4096},
        "mediaResolution": "MEDIA_RESOLUTION_HIGH",
    },
}
MAIL = {
    "personalizations": [{"to": [{"email": "a@example.com"}]}],
    "from": {"email": "no-reply@example.com", "name": "Threativator"},
    "subject": "Hello",
    "content": [{"type": "text/plain", "value": "Hi"}],
    "custom_args": {"notification_id": "n1"},
}
TWEET = {"text": "I failed", "media": {"media_ids": ["123"]}}


# -- Each provider's good request passes ------------------------------------------------------------
@pytest.mark.parametrize(
    "request_",
    [
        form("/v1/transfers", {**TRANSFER, "metadata[consequence_id]": "c1"}),
        form("/v1/balance_transactions", {"limit": "100", "created[gte]": "1", "expand[0]": "data.source"}, "GET"),
        form("/v1/webhook_endpoints/we_1", {"enabled_events[0]": "charge.dispute.created"}),
        body("/v1beta/models/gemini-3.8-flash:generateContent", GRADE),
        body("/v3/mail/send", MAIL),
        body("/2/tweets", TWEET),
        EnvironBuilder(
            path="/2/media/upload",
            method="POST",
            data={"media": (io.BytesIO(b"\x89PNG"), "proof.png", "image/png"), "media_category": "tweet_image"},
        ).get_request(),
        form(
            "/2/oauth2/token",
            {
                "grant_type": "authorization_code",
                "code": "c",
                "redirect_uri": "https://a/cb",
                "code_verifier": "v",
                "client_id": "cid",
            },
        ),
        form(
            "/2/oauth2/token",
            {"grant_type": "refresh_token", "refresh_token": "r"},
            Authorization="Basic Y2lkOnNlY3JldA==",
        ),
        form("/2/oauth2/revoke", {"token": "t", "token_type_hint": "access_token", "client_id": "cid"}),
    ],
    ids=lambda r: f"{r.method} {r.path}",
)
def test_contract_accepts_what_the_provider_describes(request_: Request) -> None:
    assert problems(request_) == []


# -- Unknown parameters, at any depth ----------------------------------------------------------------
def test_contract_refuses_an_unknown_parameter_at_any_depth() -> None:
    assert problems(form("/v1/transfers", {**TRANSFER, "speed": "fast"})) == ["unknown parameter speed"]
    nested = form(
        "/v1/payment_intents",
        {
            "amount": "100",
            "currency": "usd",
            "automatic_payment_methods[enabled]": "true",
            "automatic_payment_methods[bogus]": "1",
        },
    )
    assert problems(nested) == ["unknown parameter automatic_payment_methods[bogus]"]
    # The v1 API has no systemInstruction: google-genai's default version would be refused.
    [v1] = problems(body("/v1/models/gemini-3.8-flash:generateContent", GRADE))
    assert 'no field named "systemInstruction"' in v1
    thinking = {**GRADE, "generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}}
    assert 'no field named "thinkingLevel"' in problems(body("/v1beta/models/m:generateContent", thinking))[0]
    assert problems(body("/v3/mail/send", {**MAIL, "priority": "high"})) == ["priority: Extra inputs are not permitted"]
    upload = EnvironBuilder(
        path="/2/media/upload",
        method="POST",
        data={
            "media": (io.BytesIO(b"x"), "p.png", "image/png"),
            "media_category": "tweet_image",
            "media_type": "image/png",
        },
    ).get_request()
    assert problems(upload) == ["unknown field media_type"]
    assert problems(body("/2/tweets", {**TWEET, "media": {"media_idz": ["1"]}})) == [
        "missing required field media.media_ids",
        "unknown field media.media_idz",
    ]
    refresh = {"grant_type": "refresh_token", "refresh_token": "r", "client_id": "c", "client_secret": "s"}
    assert problems(form("/2/oauth2/token", refresh)) == ["unknown field client_secret"]


# -- Missing required parameters ----------------------------------------------------------------------
def test_contract_refuses_a_missing_required_parameter() -> None:
    assert problems(form("/v1/transfers", {"amount": "1", "currency": "usd"})) == [
        "missing required parameter destination"
    ]
    assert problems(body("/v1beta/models/m:generateContent", {"generationConfig": {}})) == [
        "missing required field contents"
    ]
    assert problems(body("/v3/mail/send", {k: v for k, v in MAIL.items() if k != "from"})) == ["from: Field required"]
    upload = EnvironBuilder(path="/2/media/upload", method="POST", data={"media_category": "tweet_image"}).get_request()
    assert problems(upload) == ["missing required field media"]
    public_client = {"grant_type": "authorization_code", "code": "c", "redirect_uri": "u", "client_id": "cid"}
    assert problems(form("/2/oauth2/token", public_client)) == ["missing required field code_verifier"]
    assert problems(form("/2/oauth2/revoke", {"token": "t"})) == ["missing required field client_id"]


# -- Enum values -------------------------------------------------------------------------------------
def test_contract_refuses_a_bad_enum_value() -> None:
    [transfer] = problems(form("/v1/transfers", {**TRANSFER, "source_type": "cash"}))
    assert transfer.startswith("source_type: 'cash' is not one of [bank_account, card, fpx]")
    [event] = problems(form("/v1/webhook_endpoints/we_1", {"enabled_events[0]": "charge.disputed"}))
    assert event.startswith("enabled_events[0]: 'charge.disputed' is not one of")
    resolution = {**GRADE, "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_ULTRA"}}
    assert (
        "Invalid enum value MEDIA_RESOLUTION_ULTRA" in problems(body("/v1beta/models/m:generateContent", resolution))[0]
    )
    attachment = {**MAIL, "attachments": [{"content": "eA==", "filename": "a.txt", "disposition": "attached"}]}
    assert problems(body("/v3/mail/send", attachment)) == [
        "attachments.0.disposition: Input should be 'inline' or 'attachment'"
    ]
    upload = EnvironBuilder(
        path="/2/media/upload", method="POST", data={"media": (io.BytesIO(b"x"), "p.png"), "media_category": "photo"}
    ).get_request()
    assert problems(upload)[0].startswith("media_category: 'photo' is not one of")
    assert problems(form("/2/oauth2/token", {"grant_type": "password"})) == [
        "grant_type 'password' is not authorization_code or refresh_token"
    ]


# -- Headers, types and operations ---------------------------------------------------------------------
def test_contract_refuses_a_stripe_version_the_sdk_does_not_pin_and_a_wrong_type() -> None:
    old = form("/v1/transfers", TRANSFER, **{"Stripe-Version": "2020-08-27"})
    assert problems(old) == [
        f"Stripe-Version '2020-08-27' is not the SDK's pinned '{stripe_contract.pinned_version()}'"
    ]
    assert problems(form("/v1/transfers", {**TRANSFER, "amount": "50.00"})) == ["amount: '50.00' is not an integer"]


def test_contract_refuses_an_operation_no_description_covers() -> None:
    assert problems(form("/v1/charity_payouts", {"amount": "1"})) == ["no published description covers this operation"]
    assert problems(body("/v1alpha/models/m:generateContent", GRADE)) == [
        "no published description covers this operation"
    ]
    assert problems(body("/v3/mail/batch", {})) == ["no published description covers this operation"]
    assert problems(body("/2/tweets/search/everything", {})) == ["no published description covers this operation"]


def test_requests_to_other_local_servers_are_no_providers() -> None:
    assert contracts.check(body("/storage/v1/object/proofs/a.png", {})) is None
    assert contracts.check(body("/.well-known/jwks.json", {})) is None
