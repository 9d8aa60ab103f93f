"""Bodies anyone can send, and signed events of shapes Stripe never sends: never a 500, never half
applied. Through functions-framework's own app, whose after_request hook reads whatever a handler
left of the body (the reason an unread chunked body once answered an HTML 500)."""

from __future__ import annotations

import io
import json
from typing import Any

import psycopg
import pytest

from shared.dev.devserver import function_sources
from tests.fakes import stripe_signature
from tests.http_helpers import client
from tests.test_holding_cell import WEBHOOK_SECRET

Conn = psycopg.Connection[dict[str, Any]]
FUNCTIONS = sorted(function_sources())
MEGABYTE = b"x" * (1024 * 1024 + 1)


def too_big() -> bytes:
    """Past every function's own limit (kompromat uploads allow the most)."""
    from shared.account import kompromat
    from shared.config import get_settings

    return b"x" * max(len(MEGABYTE), kompromat.max_request_bytes(get_settings()) + 1)


def chunked(name: str, body: bytes, **headers: str) -> Any:
    """A chunked body with no Content-Length (as a WSGI server hands it over, the chunks decoded and
    the stream terminated): the server learns its size only by reading it."""
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(
        path="/",
        method="POST",
        input_stream=io.BytesIO(body),
        headers=[("Transfer-Encoding", "chunked"), *headers.items()],
        content_type="application/json",
    )
    environ = builder.get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input_terminated"] = True
    from werkzeug.test import run_wsgi_app
    from werkzeug.wrappers import Response

    app = client(name).application
    iterable, status, response_headers = run_wsgi_app(app, environ, buffered=True)
    return Response(b"".join(iterable), status=status, headers=response_headers)


def assert_json_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:200]
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.get_json()["error"]["code"] == code


@pytest.mark.parametrize("name", FUNCTIONS)
def test_an_unsigned_chunked_megabyte_is_a_413_json_answer_from_every_function(name: str, database: str) -> None:
    body = MEGABYTE if name != "upload_kompromat" else too_big()
    assert_json_error(chunked(name, body), 413, "payload_too_large")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_an_oversized_body_with_its_length_is_a_413_before_it_is_read(name: str, database: str) -> None:
    body = MEGABYTE if name != "upload_kompromat" else too_big()
    response = client(name).post("/", data=body, content_type="application/json")
    assert_json_error(response, 413, "payload_too_large")


def test_a_chunked_body_within_the_limit_is_read_whole(database: str) -> None:
    """The shared read keeps the body: a handler (and the framework's hook) read the same bytes."""
    response = chunked("stripe_webhook", b'{"id": "evt_1"}')
    assert_json_error(response, 400, "invalid_signature")


# -----------------------------------------------------------------------------
# Signed events of shapes Stripe never sends
# -----------------------------------------------------------------------------
def signed(payload: bytes) -> Any:
    return client("stripe_webhook").post(
        "/",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": stripe_signature(payload, WEBHOOK_SECRET)},
    )


def event(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "id": "evt_shape",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": 1,
        "data": {"object": {"id": "pi_1", "object": "payment_intent", "amount": 100, "metadata": {}}},
    }
    return json.dumps({**base, **fields}).encode()


SHAPES = {
    "data as a string": event(data="payment"),
    "data.object as a list": event(data={"object": [1, 2]}),
    "metadata as a string": event(data={"object": {"id": "pi_1", "object": "payment_intent", "metadata": "u"}}),
    "a NUL in an id": event(id="evt_\x00nul"),
    "a NUL in an object id": event(data={"object": {"id": "pi_\x00", "object": "payment_intent", "metadata": {}}}),
    "an id that is a number": event(id=7),
    "a body nested 10,000 deep": b'{"id": "evt_deep", "data": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "an array": b"[]",
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_signed_event_of_an_unexpected_shape_is_a_400_and_changes_nothing(
    shape: str, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    response = signed(SHAPES[shape])
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["code"] in ("invalid_event", "invalid_signature")
    assert owner.execute("select count(*) as n from public.stripe_events").fetchone() == {"n": 0}
    assert owner.execute("select count(*) as n from public.ledger_entries").fetchone() == {"n": 0}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_no_answer_of_any_function_is_cached(name: str, database: str) -> None:
    """Answers carry proof, tokens and personal data (witness_proof, export, X's connect URL...)."""
    for response in (client(name).post("/", json={}), client(name).options("/")):
        assert response.headers["Cache-Control"] == "no-store"
