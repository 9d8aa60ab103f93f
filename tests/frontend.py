"""A frontend team's first day against `make dev` (issue 21), as a browser page would make the calls:
an `Origin` header on everything, a preflight before every cross-origin call, the Supabase session's
JWT as the bearer, and the emailed witness link and X's consent screen clicked through the local
pages. Every answer is checked for a 5xx and for the headers a page needs to read it."""

from __future__ import annotations

import html
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from shared.dev.pages import read_button
from tests.images import picture

PAGE_ORIGIN = "http://localhost:5173"

# One representative call per function, as the frontend (or a signed-out page) would make it.
CALLS: dict[str, dict[str, Any]] = {
    "change_goal": {"json": {"action": "list", "goal_id": "{goal_id}"}},
    "check_deadlines": {"json": {"source": "browser"}},
    "connect_x": {"json": {"action": "start"}},
    "contest_consequence": {"json": {"consequence_id": str(uuid.uuid4()), "reason": "I did submit in time."}},
    "delete_account": {"json": {"action": "status"}},
    "grade_submission": {"json": {"submission_id": str(uuid.uuid4())}},
    "holding_cell": {"json": {"action": "balance"}},
    "operator_review": {"json": {"action": "list"}},
    "send_notification": {"json": {"type": "stake_released", "user_id": str(uuid.uuid4()), "data": {}}},
    "stripe_webhook": {"content": b'{"id": "evt_1"}', "headers": {"Content-Type": "application/json"}},
    "trigger_consequence": {"json": {"consequence_id": str(uuid.uuid4())}},
    "upload_kompromat": {
        "data": {"severity": "minor", "description": "the 2019 karaoke video"},
        "files": {"file": ("karaoke.png", picture(3), "image/png")},
    },
}
EXPECTED = {
    "change_goal": 200,
    "check_deadlines": 403,
    "connect_x": 200,
    "contest_consequence": 404,
    "delete_account": 200,
    "grade_submission": 404,
    "holding_cell": 200,
    "operator_review": 403,
    "send_notification": 403,
    "stripe_webhook": 400,
    "trigger_consequence": 403,
    "upload_kompromat": 200,
}


def _readable(response: httpx.Response, origin: str = PAGE_ORIGIN) -> None:
    """The page may read this answer, its error body and Retry-After included."""
    assert response.status_code < 500, (response.request.url, response.status_code, response.text)
    assert response.headers.get("Access-Control-Allow-Origin") == origin, response.headers
    assert "Origin" in response.headers.get("Vary", "")
    assert "Retry-After" in response.headers.get("Access-Control-Expose-Headers", "")


def every_function(http: httpx.Client, jwt: str, goal_id: str) -> None:
    for name, call in CALLS.items():
        preflight = http.options(
            f"/{name}",
            headers={
                "Origin": PAGE_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, apikey, x-client-info",
            },
        )
        assert preflight.status_code == 204, (name, preflight.status_code)
        _readable(preflight)
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
        assert all(h in allowed for h in ("authorization", "content-type", "apikey", "x-client-info"))
        body = json.loads(json.dumps(call).replace("{goal_id}", goal_id)) if "json" in call else call
        headers = {"Origin": PAGE_ORIGIN, "Authorization": f"Bearer {jwt}", **call.get("headers", {})}
        answer = http.post(f"/{name}", headers=headers, **{k: v for k, v in body.items() if k != "headers"})
        _readable(answer)
        assert answer.status_code == EXPECTED[name], (name, answer.status_code, answer.text)
        if answer.status_code >= 400:
            assert set(answer.json()["error"]) == {"code", "message", "details"}
    # A disallowed origin: the answer comes, but the browser is not told it may read it.
    foreign = http.post(
        "/holding_cell",
        headers={"Origin": "https://evil.example", "Authorization": f"Bearer {jwt}"},
        json={"action": "balance"},
    )
    assert "Access-Control-Allow-Origin" not in foreign.headers and "Origin" in foreign.headers["Vary"]
    # Signed out: a 401 the page can read.
    signed_out = http.post("/holding_cell", headers={"Origin": PAGE_ORIGIN}, json={"action": "balance"})
    assert signed_out.status_code == 401
    _readable(signed_out)


def connect_x(http: httpx.Client, base: str, jwt: str) -> list[str]:
    user = {"Authorization": f"Bearer {jwt}", "Origin": PAGE_ORIGIN}
    started = http.post("/connect_x", headers=user, json={"action": "start"})
    assert started.status_code == 200, started.text
    consent_url = started.json()["authorize_url"]
    assert consent_url.startswith(f"{base}/app/x/authorize?")
    consent = http.get(consent_url)
    assert consent.status_code == 200 and "Allow" in consent.text
    allow = re.search(r"id='allow' href='([^']*)'", consent.text)
    assert allow is not None
    callback_url = html.unescape(allow.group(1))
    assert callback_url.startswith(f"{base}/app/x/callback?")
    callback = http.get(callback_url)
    assert callback.status_code == 200
    url, body = read_button(callback.text)
    completed = http.post(url, headers={"Authorization": f"Bearer {jwt}", "Origin": base}, json=body)
    assert completed.status_code == 200 and completed.json()["connected"] is True, completed.text
    # The same code cannot be used twice, as with X.
    again = http.post(url, headers={"Authorization": f"Bearer {jwt}"}, json=body)
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_state"
    # A made-up code is refused, as X refuses one that does not match the PKCE verifier.
    restarted = http.post("/connect_x", headers=user, json={"action": "start"}).json()["authorize_url"]
    state = httpx.QueryParams(restarted.split("?", 1)[1])["state"]
    forged = {"action": "callback", "code": "dry-not-the-challenge", "state": state}
    refused = http.post("/connect_x", headers=user, json=forged)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "x_refused"
    disconnected = http.post("/connect_x", headers=user, json={"action": "disconnect"})
    assert disconnected.status_code in (200, 409), disconnected.text
    return [consent_url.split("?")[0], callback_url.split("?")[0]]


def witness(http: httpx.Client, base: str, jwt: str, user_id: str, database: str) -> str:
    """A witness-refereed goal; the proof uploaded through Storage's API; the witness's emailed link
    opened and answered on the local page."""
    now = datetime.now(UTC)
    with psycopg.connect(database, row_factory=dict_row, autocommit=True) as conn:
        contact = conn.execute(
            "select id from public.contacts where user_id = %s and 'witness' = any(role) and verified limit 1",
            [user_id],
        ).fetchone()
        assert contact is not None
        goal = conn.execute(
            "insert into public.goals (user_id, title, final_deadline, grading_rubric, referee_type,"
            " witness_contact_id, monetary_stake, charity_destination) values (%s, 'Paint the shed', %s,"
            " 'The shed is painted', 'human_witness', %s, 0, 'givedirectly') returning id",
            [user_id, now + timedelta(days=10), contact["id"]],
        ).fetchone()
        assert goal is not None
        conn.execute("select app.activate_goal(%s)", [goal["id"]])
        checkpoint = conn.execute(
            "select id from public.checkpoints where goal_id = %s order by order_position limit 1", [goal["id"]]
        ).fetchone()
        assert checkpoint is not None
    path = f"{user_id}/shed/{uuid.uuid4().hex}.png"
    upload = http.post(
        f"/storage/v1/object/proofs/{path}",
        headers={"Authorization": f"Bearer {jwt}", "Origin": PAGE_ORIGIN},
        files={"": ("shed.png", picture(8, size=(320, 240)), "image/png")},
    )
    assert upload.status_code == 200 and upload.json()["Key"] == f"proofs/{path}", upload.text
    assert upload.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
    # Someone else's folder is refused, as Storage's policy does.
    foreign = http.post(
        f"/storage/v1/object/proofs/{uuid.uuid4()}/x.png", headers={"Authorization": f"Bearer {jwt}"}, content=b"x"
    )
    assert foreign.status_code == 400 and foreign.json()["statusCode"] == "403"  # Storage's shape
    with psycopg.connect(database, row_factory=dict_row, autocommit=True) as conn:
        submission = conn.execute(
            "insert into public.submissions (checkpoint_id, user_id, submission_type, file_path)"
            " values (%s, %s, 'file', %s) returning id",
            [checkpoint["id"], user_id, path],
        ).fetchone()
    assert submission is not None
    graded = http.post(
        "/grade_submission",
        headers={"Authorization": f"Bearer {jwt}", "Origin": PAGE_ORIGIN},
        json={"submission_id": str(submission["id"])},
    )
    assert graded.status_code == 200 and graded.json()["status"] == "awaiting_witness", graded.text
    with psycopg.connect(database, row_factory=dict_row) as conn:
        mail = conn.execute(
            "select payload from public.dev_outbox where channel = 'email' and recipient = 'wanda@example.com'"
            " and payload->>'text' like %s order by id desc limit 1",
            ["%/app/witness?token=%"],
        ).fetchone()
    assert mail is not None
    links = re.findall(r"(http://\S+/app/witness\?token=[\w.-]+)", mail["payload"]["text"])
    assert len(links) == 2
    page = http.get(links[0])
    assert page.status_code == 200 and "Your verdict as a witness" in page.text
    # The witness sees the proof as it was captured before answering: on the page, and through the API.
    assert "Paint the shed" in page.text and "data:image/png;base64," in page.text
    url, body = read_button(page.text)
    shown = http.post(url, headers={"Origin": base}, json={"action": "witness_proof", "token": body["token"]})
    assert shown.status_code == 200 and shown.json()["proof"]["images"][0].startswith("data:image/png;base64,")
    # A bogus token: a clear 400, never a 500.
    bogus = http.post(url, headers={"Origin": base}, json={**body, "token": "x" * 40})
    assert bogus.status_code == 400 and bogus.json()["error"]["code"] == "invalid_token"
    sent = http.post(url, headers={"Origin": base}, json=body)  # a witness has no account: no JWT
    assert sent.status_code == 200 and sent.json()["status"] in ("passed", "failed"), sent.text
    return str(links[0]).split("?")[0]


def first_day(base: str, jwt: str, database: str) -> None:
    import jwt as pyjwt

    user_id = str(pyjwt.decode(jwt, options={"verify_signature": False})["sub"])
    with psycopg.connect(database, row_factory=dict_row) as conn:
        goal = conn.execute(
            "select id from public.goals where user_id = %s order by created_at limit 1", [user_id]
        ).fetchone()
    assert goal is not None
    with httpx.Client(base_url=base, timeout=60) as http:
        every_function(http, jwt, str(goal["id"]))
        connect_x(http, base, jwt)
        witness(http, base, jwt, user_id, database)
