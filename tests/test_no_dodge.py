"""No dodge: a user who wants out cannot stall, fake or escape a consequence (issue 13).

Each test plays the user's move through the real database (as the user, under RLS, where the
frontend writes) or through HTTP, with the providers' stand-ins counting what they received."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from shared import db, notifications
from shared.auth import mint_token
from shared.proof import capture as proof
from shared.providers import email as email_provider
from tests import factories as f
from tests.conftest import Providers
from tests.fakes import FakeSendGrid
from tests.http_helpers import bearer, client
from tests.test_engine import check, connect_x, overdue_goal, with_kompromat
from tests.test_grading import PUBLIC_TEST_IP
from tests.test_sealing import PNG

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def sendgrid(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, database: str) -> Iterator[FakeSendGrid]:
    monkeypatch.setenv("SENDGRID_API_HOST", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test-key-value")
    monkeypatch.setenv("NOTIFICATION_RETRY_BUDGET_SECONDS", "0")
    yield FakeSendGrid(server=httpserver).install()


def _email_of(owner: Conn, user: UUID) -> str:
    row = owner.execute("select email from public.users where id = %s", [user]).fetchone()
    assert row is not None
    return str(row["email"])


def _add_contact(user: UUID, address: str, role: str = "witness") -> UUID:
    """As the user's own frontend does: an insert through RLS."""
    with db.as_user(user) as conn:
        row = conn.execute(
            "insert into public.contacts (user_id, name, email, role) values (%s, 'Someone', %s, %s) returning id",
            [user, address, [role]],
        ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def _refused(user: UUID, address: str) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        _add_contact(user, address)
    return caught.value


def _verifications(sendgrid: FakeSendGrid, address: str) -> int:
    return sum(
        1
        for mail in sendgrid.mails
        if mail.json["custom_args"]["type"] == "contact_verification"
        and any(to["email"] == address for p in mail.json["personalizations"] for to in p["to"])
    )


# -----------------------------------------------------------------------------
# 1. An address the provider cannot take never stalls anyone else
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["a,b@example.com", "(@b.c", "a@b", "a b@example.com", "x@-bad-.com"])
def test_contact_addresses_are_checked_strictly_where_the_frontend_writes(owner: Conn, address: str) -> None:
    alice = f.user(owner)
    error = _refused(alice, address)
    assert error.sqlstate == "23514"
    assert owner.execute("select count(*) as n from public.contacts").fetchone() == {"n": 0}


def test_the_sender_refuses_an_address_the_provider_could_not_take(sendgrid: FakeSendGrid) -> None:
    for address in ("(@b.c", "a,b@example.com", "no-at-sign"):
        with pytest.raises(email_provider.EmailRejected, match="not a valid email address"):
            email_provider.send(email_provider.Email(to=[address], subject="s", text="t", html="<p>t</p>"))
    assert sendgrid.mails == []


# -----------------------------------------------------------------------------
# 2. Referees are other people
# -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spelling", ["{local}@{domain}", "{LOCAL}@{DOMAIN}", "{local}+ref@{domain}", " {local}@{domain}"]
)
def test_the_owner_cannot_be_their_own_witness_or_target(owner: Conn, spelling: str) -> None:
    alice = f.user(owner)
    local, domain = _email_of(owner, alice).split("@")
    address = spelling.format(local=local, domain=domain, LOCAL=local.upper(), DOMAIN=domain.upper()).strip()
    error = _refused(alice, address)
    assert error.sqlstate == "42501" and "your own mailbox" in str(error)
    # Nor by changing a stranger's address to the owner's afterwards.
    contact = _add_contact(alice, "stranger@example.org")
    with pytest.raises(psycopg.Error, match="your own mailbox"), db.as_user(alice) as conn:
        conn.execute("update public.contacts set email = %s where id = %s", [address, contact])


def test_gmail_dots_do_not_make_another_person(owner: Conn) -> None:
    alice = f.user(owner)
    owner.execute("update auth.users set email = 'alice.smith@gmail.com' where id = %s", [alice])
    for address in ("alicesmith@gmail.com", "a.l.i.c.e.s.m.i.t.h+w@googlemail.com", "AliceSmith@GMail.com"):
        assert "your own mailbox" in str(_refused(alice, address))
    _add_contact(alice, "alice.smith@example.com")  # another domain is another mailbox


# -----------------------------------------------------------------------------
# 6. Declined means never again
# -----------------------------------------------------------------------------
def test_a_declined_contact_is_never_mailed_again(owner: Conn, sendgrid: FakeSendGrid) -> None:
    alice = f.user(owner)
    contact = _add_contact(alice, "bob@example.org")
    assert notifications.send_due() == {"sent": 1}
    owner.execute(
        "update public.contacts set verification_token_hash = encode(sha256(convert_to(%s, 'UTF8')), 'hex'),"
        " verification_expires_at = now() + interval '1 day' where id = %s",
        ["a-token-long-enough-0001", contact],
    )
    with db.as_user(alice) as conn:  # the contact declines through their link
        conn.execute("select public.decline_contact(%s)", ["a-token-long-enough-0001"])
    # The owner moves the address away and back, re-adds it in capitals, with a +tag.
    with db.as_user(alice) as conn:
        conn.execute("update public.contacts set email = 'other@example.org' where id = %s", [contact])
        conn.execute("update public.contacts set email = 'bob@example.org' where id = %s", [contact])
    again = _add_contact(alice, "BOB@Example.org")
    tagged = _add_contact(alice, "bob+again@example.org")
    notifications.send_due()
    assert _verifications(sendgrid, "bob@example.org") == 1
    assert _verifications(sendgrid, "BOB@Example.org") == _verifications(sendgrid, "bob+again@example.org") == 0
    assert len(sendgrid.mails) == 1  # the notice queued for the moment it read 'other' is not sent to bob
    rows = owner.execute(
        "select id, declined_at is not null as declined, verified from public.contacts where id = any(%s)",
        [[contact, again, tagged]],
    ).fetchall()
    assert all(r["declined"] and not r["verified"] for r in rows), rows
    # Another user may still ask the same person: the suppression is per user.
    carol = f.user(owner, "carol")
    _add_contact(carol, "bob@example.org")
    notifications.send_due()
    assert _verifications(sendgrid, "bob@example.org") == 2


# -----------------------------------------------------------------------------
# 8. Contact spam: verification emails are rate limited per user per day
# -----------------------------------------------------------------------------
def test_twenty_five_contacts_send_ten_verifications_and_the_rest_wait(
    owner: Conn, sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = f.user(owner)
    with db.as_user(alice) as conn:
        for n in range(25):
            conn.execute(
                "insert into public.contacts (user_id, name, email, role) values (%s, 'x', %s, '{witness}')",
                [alice, f"person{n}@example.org"],
            )
    bob = f.user(owner, "bob")
    _add_contact(bob, "friend@example.org")
    for _ in range(3):
        notifications.send_due()
    assert len(sendgrid.mails) == 11  # Alice's ten, and Bob's one is not held up by hers
    waiting = owner.execute(
        "select count(*) as n, min(next_attempt_at) > now() + interval '23 hours' as tomorrow"
        " from public.notifications where status = 'queued' and user_id = %s",
        [alice],
    ).fetchone()
    assert waiting == {"n": 15, "tomorrow": True}
    # A day later the next ten go.
    owner.execute(
        "update public.notifications set sent_at = sent_at - interval '25 hours',"
        " next_attempt_at = now() - interval '1 second' where user_id = %s",
        [alice],
    )
    notifications.send_due()
    assert len(sendgrid.mails) == 21


# -----------------------------------------------------------------------------
# 4. X cannot be disconnected the day before the deadline
# -----------------------------------------------------------------------------
def _disconnect(user: UUID) -> Any:
    return client("connect_x").post("/", json={"action": "disconnect"}, headers=bearer(mint_token(str(user))))


def test_x_cannot_be_disconnected_while_a_goal_would_post_with_it(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, stake="0.00", major=with_kompromat(owner, user, "major"))
    connect_x(owner, user)
    refused = _disconnect(user)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "x_connection_in_use"
    assert owner.execute("select count(*) as n from public.x_connections").fetchone() == {"n": 1}
    assert providers.x.revoked == []
    # The deadline passes: the post goes out on the account the goal was made with.
    overdue_goal(owner, goal)
    check()
    assert len(providers.x.tweets) == 1
    # With no active goal and nothing unfinished, the user may leave X.
    assert _disconnect(user).status_code == 200
    assert owner.execute("select count(*) as n from public.x_connections").fetchone() == {"n": 0}


def test_x_can_be_disconnected_when_nothing_depends_on_it(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    f.goal(owner, user, stake="5.00")  # an active goal without major kompromat never posts to X
    connect_x(owner, user)
    assert _disconnect(user).status_code == 200


# -----------------------------------------------------------------------------
# 5. The recipients are fixed when the goal fails
# -----------------------------------------------------------------------------
def test_targets_are_fixed_when_the_consequence_is_created(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    target = f.contact(owner, user, roles=("consequence_target",), email="boss@example.org")
    goal = f.goal(owner, user, stake="0.00", major=with_kompromat(owner, user, "major"))
    overdue_goal(owner, goal)
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")  # failed; not yet executed
    # The owner, now that the goal failed, tries to take the target away or redirect it.
    for sql in (
        "delete from public.contacts where id = %s",
        "update public.contacts set email = 'me-again@example.org' where id = %s",
        "update public.contacts set name = '<b>x</b>' where id = %s",
    ):
        with pytest.raises(psycopg.Error) as caught, db.as_user(user) as conn:
            conn.execute(sql, [target])
        assert "has not been carried out yet" in str(caught.value)
    check()
    to_boss = [
        m for m in providers.sendgrid.mails if m.json["personalizations"][0]["to"][0]["email"] == "boss@example.org"
    ]
    assert len(to_boss) == 1
    # Once it is carried out, the contact is the owner's to remove again (no active goal).
    with db.as_user(user) as conn:
        conn.execute("delete from public.contacts where id = %s", [target])


def test_a_target_who_declines_after_the_failure_is_not_mailed(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    target = f.contact(owner, user, roles=("consequence_target",), email="ex@example.org")
    keeper = f.contact(owner, user, roles=("consequence_target",), email="keeper@example.org")
    goal = f.goal(owner, user, stake="0.00", major=with_kompromat(owner, user, "major"))
    overdue_goal(owner, goal)
    owner.execute("select app.detect_missed_deadlines(10, 1, 1)")
    owner.execute("update public.contacts set verified = false, declined_at = now() where id = %s", [target])
    check()
    recipients = [m.json["personalizations"][0]["to"][0]["email"] for m in providers.sendgrid.mails]
    assert "ex@example.org" not in recipients and "keeper@example.org" in recipients and keeper


# -----------------------------------------------------------------------------
# 11. Bad input is a clear 4xx, never a 500
# -----------------------------------------------------------------------------
def _multipart(fields: dict[str, str], file: tuple[str, str, bytes], boundary: str = "b0undary") -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    filename, content_type, content = file
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def _upload(user: UUID, body: bytes, *, chunked: bool = False) -> Any:
    headers = {**bearer(mint_token(str(user))), "Content-Type": "multipart/form-data; boundary=b0undary"}
    if not chunked:
        return client("upload_kompromat").post("/", data=body, headers=headers)
    # As gunicorn hands a chunked request to the app: no Content-Length, the input ends where it ends.
    return client("upload_kompromat").open(
        "/",
        method="POST",
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_nul_byte_in_a_kompromat_description_is_a_400(owner: Conn) -> None:
    alice = f.user(owner)
    response = _upload(alice, _multipart({"severity": "major", "description": "ha\x00ha"}, ("a.png", "image/png", PNG)))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_characters"
    assert response.json["error"]["details"][0]["field"] == "description"
    assert owner.execute("select count(*) as n from public.kompromat").fetchone() == {"n": 0}


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversized_upload_is_a_413_json_chunked_or_not(
    owner: Conn, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    monkeypatch.setenv("KOMPROMAT_MAX_BYTES", "1000")
    alice = f.user(owner)
    body = _multipart({"severity": "major"}, ("a.png", "image/png", PNG + b"\x00" * 200_000))
    response = _upload(alice, body, chunked=chunked)
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"
    assert owner.execute("select count(*) as n from public.kompromat").fetchone() == {"n": 0}


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("photo.exe", "photo.png"),
        ("invoice.pdf.exe", "invoice pdf.png"),
        ("<img src=x>.png", "img src x.png"),
        ("../../etc/passwd", "passwd.png"),
        (".png", "kompromat.png"),
    ],
)
def test_kompromat_is_named_by_its_content(owner: Conn, name: str, stored: str) -> None:
    alice = f.user(owner)
    response = _upload(alice, _multipart({"severity": "major"}, (name, "application/x-msdownload", PNG)))
    assert response.status_code == 200, response.json
    assert (response.json["file_type"], response.json["original_filename"]) == ("image/png", stored)


def test_a_nul_byte_in_a_json_field_is_a_400_naming_it(owner: Conn) -> None:
    alice = f.user(owner)
    response = client("grade_submission").post(
        "/",
        json={"action": "witness_verdict", "token": "t" * 40, "verdict": "pass", "comment": "fine\x00"},
    )
    assert response.status_code == 400
    assert response.json["error"] == {
        "code": "invalid_characters",
        "message": "comment contains a control character",
        "details": [
            {"field": "comment", "message": "control characters are not allowed", "type": "invalid_characters"}
        ],
    }
    assert alice


def test_a_url_that_trickles_bytes_is_cut_off_at_one_total_deadline(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page sending a byte every 0.2 s never trips a per-read timeout; the total deadline cuts it."""
    sent: list[int] = []

    def trickle(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for n in range(40):  # 8 s of trickle, against a 1 s deadline
                sent.append(n)
                yield b"x"
                time.sleep(0.2)

        return Response(body(), content_type="text/plain")

    httpserver.expect_request("/slow").respond_with_handler(trickle)
    monkeypatch.setenv("URL_FETCH_TIMEOUT_SECONDS", "1")
    monkeypatch.setattr(proof, "RESOLVER", lambda host, port: [PUBLIC_TEST_IP])
    monkeypatch.setattr(proof, "CONNECTOR", lambda ip, port: (httpserver.host, httpserver.port))
    with pytest.raises(proof.ProofRefused, match="took too long"):
        proof.fetch("http://proof.example.com/slow")
    assert len(sent) < 40  # the grader walked away long before the page ended


# -----------------------------------------------------------------------------
# 7. Names and titles are text in every email
# -----------------------------------------------------------------------------
def test_every_notice_renders_user_text_as_text(owner: Conn, sendgrid: FakeSendGrid) -> None:
    alice = f.user(owner)
    goal = f.goal(owner, alice, stake="5.00", checkpoints=0)
    # Written before the lock (or by an old row): the template still escapes it.
    owner.execute("update public.goals set title = %s where id = %s", ['<img src=x onerror="alert(1)">', goal])
    final = f.checkpoint_ids(owner, goal)[0]
    owner.execute("select app.record_grade(%s, 'passed')", [f.submission(owner, alice, final)])
    notifications.send_due()
    mail = next(m for m in sendgrid.mails if m.json["custom_args"]["type"] == "stake_released")
    page = next(c["value"] for c in mail.json["content"] if c["type"] == "text/html")
    assert "<img src=x" not in page and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page
    assert page.count("<img ") == 1  # the avatar only


def test_a_goal_title_with_control_characters_is_refused_by_the_database(owner: Conn) -> None:
    alice = f.user(owner)
    goal = f.goal(owner, alice, activate=False)
    with pytest.raises(psycopg.Error) as caught, db.as_user(alice) as conn:
        conn.execute("update public.goals set title = %s where id = %s", ["Line\rBcc: x@y.z", goal])
    assert caught.value.sqlstate == "23514"


def test_a_legacy_contact_the_provider_cannot_take_stalls_no_one(providers: Providers, owner: Conn) -> None:
    """Problem 1 through check_deadlines: a contact row from before the strict check, with an address
    SendGrid's helper raised on, is a consequence target and has a verification queued. Every other
    user's consequence and notice still goes out; the bad items fail alone, with a reason."""
    mallory = f.user(owner, "mallory")
    with owner.transaction():  # a row written before the check existed
        owner.execute("alter table public.contacts drop constraint contacts_email_is_an_address")
        owner.execute(
            "insert into public.contacts (user_id, name, email, role, verified, verified_at)"
            " values (%s, 'Bad', 'a,b@example.com', '{consequence_target}', true, now())",
            [mallory],
        )
        owner.execute(
            "insert into public.contacts (user_id, name, email, role) values (%s, 'Worse', '(@b.c', '{witness}')",
            [mallory],
        )
        owner.execute(
            "alter table public.contacts add constraint contacts_email_is_an_address check ("
            "char_length(email) <= 254 and email ~ '^[A-Za-z0-9.!#$%%&''*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$') not valid"
        )
    bad_goal = f.goal(owner, mallory, stake="0.00", major=with_kompromat(owner, mallory, "major"))
    overdue_goal(owner, bad_goal)
    alice = f.user(owner, "alice")
    good_goal = f.goal(owner, alice, stake="12.00", checkpoints=0)
    overdue_goal(owner, good_goal)
    result = check()
    assert result["stage_failures"] == []
    assert sum(int(t["amount"]) for t in providers.stripe.objects.get("transfer", [])) == 1200  # Alice's stake
    rows = owner.execute(
        "select c.consequence_type::text as kind, c.execution_status::text as status, c.last_error"
        " from public.consequences c where c.user_id = %s",
        [mallory],
    ).fetchall()
    assert rows == [{"kind": "humiliation_email", "status": "failed", "last_error": "every target's address bounced"}]
    queued = owner.execute(
        "select status::text, last_error from public.notifications where type = 'contact_verification'"
    ).fetchall()
    assert queued == [{"status": "failed", "last_error": "a recipient address is not a valid email address"}]
    sent_to = {m.json["personalizations"][0]["to"][0]["email"] for m in providers.sendgrid.mails}
    assert "a,b@example.com" not in sent_to and "(@b.c" not in sent_to
