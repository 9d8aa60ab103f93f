"""`threativator demo`: a scripted story against the running local stack, narrated.

A user sets a goal due in two minutes, submits proof for one checkpoint, misses
the next (the roulette rolls) and misses the final deadline (the rest of the
stake goes to charity, the kompromat to a contact). Each step shows its
request and what came of it. Development only: it writes to the database
directly where a real user would use the frontend and Stripe.js.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import db
from shared.auth import mint_token
from shared.config import get_settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"demo kompromat, not a real photo" * 4


class Narrator:
    def __init__(self) -> None:
        self.step = 0

    def title(self, text: str) -> None:
        self.step += 1
        print(f"\n[{self.step}] {text}", flush=True)

    def say(self, text: str) -> None:
        print(f"    {text}", flush=True)

    def request(self, method: str, path: str, body: Any, response: Any) -> None:
        shown = json.dumps(body)[:160] if body is not None else ""
        print(f"    → {method} {path} {shown}", flush=True)
        print(f"    ← {response.status_code} {json.dumps(response.json())[:300]}", flush=True)


def run(base_url: str, *, fast: bool, wait_seconds: float = 130.0) -> dict[str, Any]:
    import httpx

    say = Narrator()
    http = httpx.Client(base_url=base_url, timeout=120)
    service = {"Authorization": f"Bearer {mint_token(None, role='service_role', ttl_seconds=900)}"}

    say.title("A user signs up and gets ready to be held to account")
    user_id = uuid.uuid4()
    email = f"demo-{user_id.hex[:8]}@example.com"
    with db.transaction() as conn:
        conn.execute("insert into auth.users (id, email, email_confirmed_at) values (%s, %s, now())", [user_id, email])
        conn.execute("update public.users set display_name = 'Dana Demo' where id = %s", [user_id])
        conn.execute(
            "insert into public.contacts (user_id, name, email, role, verified, verified_at)"
            " values (%s, 'Carl Critic', 'carl.critic@example.com', '{consequence_target}', true, now())",
            [user_id],
        )
        conn.execute("select app.credit_deposit(%s, 3000, %s)", [user_id, f"pi_demo_{user_id.hex[:12]}"])
    user = {"Authorization": f"Bearer {mint_token(str(user_id), email=email, ttl_seconds=900)}"}
    say.say(f"user {email}; contact Carl Critic (verified); $30.00 deposited (a simulated Stripe webhook)")
    kompromat = {}
    for severity in ("minor", "major"):
        response = http.post(
            "/upload_kompromat",
            headers=user,
            data={"severity": severity},
            files={"file": (f"{severity}.png", PNG, "image/png")},
        )
        say.request("POST", "/upload_kompromat", {"severity": severity, "file": f"{severity}.png"}, response)
        kompromat[severity] = response.json()["id"]
    balance = http.post("/holding_cell", headers=user, json={"action": "balance"})
    say.request("POST", "/holding_cell", {"action": "balance"}, balance)

    say.title("A goal due in two minutes, with two checkpoints and $30.00 at stake")
    now = datetime.now(UTC)
    with db.as_user(user_id, email=email) as conn:
        goal = conn.execute(
            "insert into public.goals (user_id, title, final_deadline, grading_rubric, referee_type, monetary_stake,"
            " charity_destination, minor_kompromat_id, major_kompromat_id) values (%s, 'Write the demo chapter',"
            " %s, 'A chapter of at least 2,000 words', 'ai', 30.00, 'givedirectly', %s, %s) returning id",
            [user_id, now + timedelta(minutes=2), kompromat["minor"], kompromat["major"]],
        ).fetchone()
        assert goal is not None
        goal_id = goal["id"]
        for position, minutes in ((1, 1.0), (2, 1.5)):
            conn.execute(
                "insert into public.checkpoints (goal_id, title, deadline, order_position) values (%s, %s, %s, %s)",
                [goal_id, f"Checkpoint {position}", now + timedelta(minutes=minutes), position],
            )
    with db.as_service() as conn:
        conn.execute("select app.activate_goal(%s)", [goal_id])
        checkpoints = conn.execute(
            "select id, title, deadline from public.checkpoints where goal_id = %s order by order_position", [goal_id]
        ).fetchall()
    for cp in checkpoints:
        say.say(f"{cp['title']}: due {cp['deadline']:%H:%M:%S} UTC")
    say.say("activated: $30.00 moved from available to reserved")

    say.title("A submission for checkpoint 1")
    with db.as_user(user_id, email=email) as conn:
        submission = conn.execute(
            "insert into public.submissions (checkpoint_id, user_id, submission_type, external_url)"
            " values (%s, %s, 'url', 'https://example.com/my-chapter') returning id",
            [checkpoints[0]["id"], user_id],
        ).fetchone()
    assert submission is not None
    graded = http.post("/grade_submission", headers=user, json={"submission_id": str(submission["id"])})
    say.request("POST", "/grade_submission", {"submission_id": str(submission["id"])}, graded)
    say.say("proof made before its deadline protects the checkpoint while it is being reviewed")

    say.title("The deadlines pass")
    if fast:
        # Everything moves back together, so proof made on time stays on time.
        with db.transaction() as conn:
            conn.execute(
                "update public.submissions set submitted_at = submitted_at - interval '10 minutes'"
                " where checkpoint_id in (select id from public.checkpoints where goal_id = %s)",
                [goal_id],
            )
            conn.execute(
                "update public.checkpoints set deadline = now() - interval '1 second' where goal_id = %s", [goal_id]
            )
            conn.execute(
                "update public.goals set final_deadline = now() - interval '1 second' where id = %s", [goal_id]
            )
        say.say("--fast: the clock is wound forward; every deadline is now in the past")
    else:
        say.say(f"waiting {wait_seconds:.0f}s for the final deadline (use --fast to skip)")
        time.sleep(wait_seconds)

    say.title("The scheduler runs: a missed checkpoint, its roulette roll, and the missed final deadline")
    checked = _settle(http, service, goal_id, unfinished=("pending", "executing"))
    with db.as_service() as conn:
        held = conn.execute(
            "select count(*) as n, min(execute_after) as until from public.consequences"
            " where goal_id = %s and execution_status = 'held'",
            [goal_id],
        ).fetchone()
    if held and held["n"]:
        say.say(
            f"{held['n']} consequence(s) held for the contest window until {held['until']:%H:%M:%S} UTC"
            " (CONTEST_WINDOW_HOURS); the user was told, and could contest through contest_consequence"
        )
        _contest_and_decide(http, say, user, user_id, goal_id)
        with db.as_service() as conn:
            conn.execute(
                "update public.consequences set execute_after = now() where goal_id = %s"
                " and execution_status = 'held' and contest_status = 'none'",
                [goal_id],
            )
        say.say("the demo winds the contest window forward: uncontested, they are carried out")
        checked = _settle(http, service, goal_id, unfinished=("held", "pending", "executing"))
    say.request("POST", "/check_deadlines", {"source": "demo"}, checked)
    with db.as_service() as conn:
        roll = conn.execute(
            "select draw, odds_numerator, odds_denominator, outcome::text from public.roulette_rolls"
            " where checkpoint_id = %s",
            [checkpoints[1]["id"]],
        ).fetchone()
        consequences = conn.execute(
            "select consequence_type::text as type, execution_status::text as status, monetary_amount,"
            " provider_reference from public.consequences where goal_id = %s order by triggered_at",
            [goal_id],
        ).fetchall()
        outbox = conn.execute(
            "select channel, recipient, summary from public.dev_outbox where created_at >= %s order by id", [now]
        ).fetchall()
        notices = conn.execute(
            "select type::text, status::text from public.notifications where user_id = %s order by created_at",
            [user_id],
        ).fetchall()
        goal_status = conn.execute("select status::text from public.goals where id = %s", [goal_id]).fetchone()
    if roll:
        say.say(
            f"checkpoint 2 missed; roulette drew {roll['draw']} at odds {roll['odds_numerator']}/"
            f"{roll['odds_denominator']}: {roll['outcome']}"
        )
    say.say(f"goal is now {goal_status['status'] if goal_status else '?'}")
    for c in consequences:
        say.say(f"consequence {c['type']}: {c['status']} ({c['provider_reference'] or '-'})")

    say.title("What left the building (the development outbox)")
    for item in outbox:
        say.say(f"{item['channel']}: {item['summary']} → {item['recipient']}")

    say.title("The user's notifications")
    for notice in notices:
        say.say(f"{notice['type']}: {notice['status']}")
    _pause_with_notice(http, say, user, user_id, email, service)
    _local_pages(http, say, base_url, user, user_id, email)
    _leaving(http, say, service)
    _console_decides_reuse(http, say, base_url)
    print("\nDone. The operator page shows it all: " + base_url + "/", flush=True)
    return {
        "user_id": str(user_id),
        "goal_id": str(goal_id),
        "consequences": consequences,
        "outbox": outbox,
        "notifications": notices,
    }


def _active_goal(user_id: Any, email: str, title: str, stake: str, checkpoint: tuple[str, timedelta]) -> Any:
    """A goal due in 30 days with one checkpoint, written as the user (RLS) and activated."""
    now = datetime.now(UTC)
    with db.as_user(user_id, email=email) as conn:
        goal = conn.execute(
            "insert into public.goals (user_id, title, final_deadline, grading_rubric, referee_type, monetary_stake,"
            " charity_destination) values (%s, %s, %s, 'Proof that it is done', 'ai', %s, 'givedirectly')"
            " returning id",
            [user_id, title, now + timedelta(days=30), stake],
        ).fetchone()
        assert goal is not None
        conn.execute(
            "insert into public.checkpoints (goal_id, title, deadline, order_position) values (%s, %s, %s, 1)",
            [goal["id"], checkpoint[0], now + checkpoint[1]],
        )
    with db.as_service() as conn:
        conn.execute("select app.activate_goal(%s)", [goal["id"]])
    return goal["id"]


def _pause_with_notice(
    http: Any, say: Narrator, user: dict[str, str], user_id: Any, email: str, service: dict[str, str]
) -> None:
    """A second goal; the user asks for a pause, which waits out the notice period, then applies."""
    say.title("Life happens: a pause, asked for with notice (the akrasia horizon)")
    now = datetime.now(UTC)
    goal = {"id": _active_goal(user_id, email, "Finish the second draft", "0", ("Half way", timedelta(days=15)))}
    start = now + timedelta(days=get_settings().change_notice_days, hours=1)
    body = {
        "action": "request",
        "goal_id": str(goal["id"]),
        "change": {"type": "pause", "from": start.isoformat(), "until": (start + timedelta(days=5)).isoformat()},
    }
    asked = http.post("/change_goal", headers=user, json=body)
    say.request("POST", "/change_goal", body, asked)
    say.say(
        f"the pause waits out CHANGE_NOTICE_DAYS ({get_settings().change_notice_days:g} days): it takes effect at "
        f"{asked.json().get('effective_at')}; every deadline before then stays due"
    )
    with db.as_service() as conn:
        conn.execute(
            "update public.goal_change_requests set effective_at = now() where goal_id = %s and status = 'pending'",
            [goal["id"]],
        )
    say.say("the demo winds the notice period forward; the scheduler's next pass applies it")
    checked = http.post("/check_deadlines", headers=service, json={"source": "demo"})
    say.say(f"check_deadlines applied {checked.json().get('goal_changes')} change(s)")
    listed = http.post("/change_goal", headers=user, json={"action": "list", "goal_id": str(goal["id"])})
    say.request("POST", "/change_goal", {"action": "list", "goal_id": str(goal["id"])}, listed)
    say.say(f"pause request: {listed.json()['requests'][0]['status']}")
    with db.as_service() as conn:
        for cp in conn.execute(
            "select title, deadline from public.checkpoints where goal_id = %s order by order_position", [goal["id"]]
        ).fetchall():
            say.say(f"{cp['title']}: now due {cp['deadline']:%Y-%m-%d %H:%M} UTC (5 days later)")


def _local_pages(http: Any, say: Narrator, base_url: str, user: dict[str, str], user_id: Any, email: str) -> None:
    """X's consent screen and a witness's emailed link, clicked through make dev's local pages."""
    import html
    import re

    from shared.dev.pages import read_button

    say.title("Connecting X and asking a witness, clicked through the local pages")
    started = http.post("/connect_x", headers=user, json={"action": "start"})
    consent_url = started.json().get("authorize_url", "")
    say.say(f"X consent page: {consent_url.split('?')[0]}")
    allow = re.search(r"id='allow' href='([^']*)'", http.get(consent_url).text) if consent_url else None
    if allow is None:
        say.say("the consent page is not make dev's own (X_CLIENT_ID is set); skipped")
    else:
        callback_url = html.unescape(allow.group(1))
        say.say(f"'Allow' returns to: {callback_url.split('?')[0]}")
        url, body = read_button(http.get(callback_url).text)
        done = http.post(url, headers=user, json=body)
        say.request("POST", url, {"action": "callback", "code": "…", "state": "…"}, done)
    now = datetime.now(UTC)
    with db.transaction() as conn:
        contact = conn.execute(
            "insert into public.contacts (user_id, name, email, role, verified, verified_at)"
            " values (%s, 'Wendy Witness', 'wendy.witness@example.com', '{witness}', true, now()) returning id",
            [user_id],
        ).fetchone()
    assert contact is not None
    with db.as_user(user_id, email=email) as conn:
        goal = conn.execute(
            "insert into public.goals (user_id, title, final_deadline, grading_rubric, referee_type,"
            " witness_contact_id, monetary_stake, charity_destination) values (%s, 'Paint the shed', %s,"
            " 'The shed is painted, every wall', 'human_witness', %s, 0, 'givedirectly') returning id",
            [user_id, now + timedelta(days=10), contact["id"]],
        ).fetchone()
    assert goal is not None
    with db.as_service() as conn:
        conn.execute("select app.activate_goal(%s)", [goal["id"]])
        checkpoint = conn.execute(
            "select id from public.checkpoints where goal_id = %s order by order_position limit 1", [goal["id"]]
        ).fetchone()
    assert checkpoint is not None
    path = f"{user_id}/shed/{uuid.uuid4().hex}.png"
    upload = http.post(f"/storage/v1/object/proofs/{path}", headers=user, files={"": ("shed.png", _photo())})
    say.request("POST", f"/storage/v1/object/proofs/{path}", None, upload)
    with db.as_user(user_id, email=email) as conn:
        submission = conn.execute(
            "insert into public.submissions (checkpoint_id, user_id, submission_type, file_path)"
            " values (%s, %s, 'file', %s) returning id",
            [checkpoint["id"], user_id, path],
        ).fetchone()
    assert submission is not None
    graded = http.post("/grade_submission", headers=user, json={"submission_id": str(submission["id"])})
    say.request("POST", "/grade_submission", {"submission_id": str(submission["id"])}, graded)
    with db.as_service() as conn:
        mail = conn.execute(
            "select payload ->> 'text' as text from public.dev_outbox where recipient = 'wendy.witness@example.com'"
            " order by id desc limit 1"
        ).fetchone()
    links = re.findall(r"(https?://\S+/witness\?token=[\w.-]+)", (mail or {}).get("text") or "")
    if not links or not links[0].startswith(base_url):
        say.say("the witness's email links to the frontend (APP_BASE_URL), not make dev's page; skipped")
        return
    say.say(f"witness page (from Wendy's email): {links[0].split('?')[0]}")
    url, body = read_button(http.get(links[0]).text)
    answered = http.post(url, json=body)  # the witness has no account: the signed link is the credential
    say.request("POST", url, {"action": "witness_verdict", "verdict": body.get("verdict"), "token": "…"}, answered)


def _photo() -> bytes:
    """A small real PNG (proof is decoded and fingerprinted when it is captured)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.linear_gradient("L").resize((320, 240)).convert("RGB").save(out, "PNG")
    return out.getvalue()


def _leaving(http: Any, say: Narrator, service: dict[str, str]) -> None:
    """A second user leaves with a checkpoint due inside the notice period: it stays due."""
    say.title("Leaving is allowed, escaping is not: a user leaves with a checkpoint due tomorrow")
    user_id = uuid.uuid4()
    email = f"leaver-{user_id.hex[:8]}@example.com"
    with db.transaction() as conn:
        conn.execute("insert into auth.users (id, email, email_confirmed_at) values (%s, %s, now())", [user_id, email])
        conn.execute("select app.credit_deposit(%s, 1500, %s)", [user_id, f"pi_leave_{user_id.hex[:12]}"])
    goal = {"id": _active_goal(user_id, email, "Run a marathon", "15.00", ("Run 10 km", timedelta(days=1)))}
    user = {"Authorization": f"Bearer {mint_token(str(user_id), email=email, ttl_seconds=900)}"}
    say.say(f"{email}: $15.00 at stake on 'Run a marathon'; 'Run 10 km' is due tomorrow")
    asked = http.post("/delete_account", headers=user, json={"action": "request"})
    say.request("POST", "/delete_account", {"action": "request"}, asked)
    say.say("the goal is cancelled only after the notice period: tomorrow's checkpoint stays due")
    with db.transaction() as conn:
        conn.execute(
            "update public.checkpoints set deadline = now() - interval '1 second' where goal_id = %s and not is_final",
            [goal["id"]],
        )
    say.say("the demo winds the clock: the checkpoint is missed while the user is leaving")
    http.post("/check_deadlines", headers=service, json={"source": "demo"})
    with db.transaction() as conn:
        conn.execute(
            "update public.consequences set execute_after = now() where goal_id = %s and execution_status = 'held'"
            " and contest_status = 'none'",
            [goal["id"]],
        )
        roll = conn.execute(
            "select outcome::text from public.roulette_rolls where goal_id = %s", [goal["id"]]
        ).fetchone()
    say.say(f"the roulette rolled for the missed checkpoint: {roll['outcome'] if roll else '?'}")
    http.post("/check_deadlines", headers=service, json={"source": "demo"})
    with db.transaction() as conn:
        conn.execute(
            "update public.goal_change_requests set requested_at = requested_at - interval '8 days',"
            " effective_at = now() where goal_id = %s and status = 'pending'",
            [goal["id"]],
        )
    say.say("the demo winds the notice period forward: the goal is cancelled, what is left refunded")
    for _ in range(4):
        checked = http.post("/check_deadlines", headers=service, json={"source": "demo"}).json()
        with db.transaction() as conn:
            gone = conn.execute("select 1 from public.users where id = %s", [user_id]).fetchone()
        if gone is None:
            break
    say.say(f"leaving stage: {checked.get('leaving')}")
    with db.transaction() as conn:
        left = conn.execute("select count(*) as n from public.users where email = %s", [email]).fetchone()
        kept = conn.execute(
            "select count(*) as n from public.ledger_entries le join public.users u on u.id = le.user_id"
            " where u.erased_at is not null and le.goal_id = %s",
            [goal["id"]],
        ).fetchone()
    say.say(
        f"account erased: {left['n'] if left else '?'} row(s) still carry the email; "
        f"{kept['n'] if kept else '?'} ledger entries kept under the tombstone"
    )


def _contest_and_decide(http: Any, say: Narrator, user: dict[str, str], user_id: Any, goal_id: Any) -> None:
    """The user contests the first held consequence; an operator reads the queue and upholds it."""
    say.title("The user contests a consequence; an operator decides")
    with db.as_service() as conn:
        first = conn.execute(
            "select id from public.consequences where goal_id = %s and execution_status = 'held'"
            " order by triggered_at limit 1",
            [goal_id],
        ).fetchone()
    assert first is not None
    body = {"consequence_id": str(first["id"]), "reason": "I was working on it until the last minute."}
    say.request("POST", "/contest_consequence", body, http.post("/contest_consequence", headers=user, json=body))
    operator_id = uuid.uuid4()
    with db.transaction() as conn:
        conn.execute(
            "insert into auth.users (id, email, email_confirmed_at, raw_app_meta_data) values (%s, %s, now(), %s)",
            [operator_id, f"ops-{operator_id.hex[:8]}@example.com", db.Json({"role": "operator"})],
        )
    operator = {
        "Authorization": f"Bearer {mint_token(str(operator_id), app_metadata={'role': 'operator'}, ttl_seconds=900)}"
    }
    listed = http.post("/operator_review", headers=operator, json={"action": "list"})
    say.request("POST", "/operator_review", {"action": "list"}, listed)
    decision = {
        "action": "decide_consequence",
        "consequence_id": str(first["id"]),
        "decision": "execute",
        "reason": "No proof was submitted for the final deadline; working on it is not finishing it.",
    }
    say.request("POST", "/operator_review", decision, http.post("/operator_review", headers=operator, json=decision))
    say.say("upheld: the contest delayed it, and the operator decided; the decision is in audit_log")


def _settle(http: Any, service: dict[str, str], goal_id: Any, unfinished: tuple[str, ...]) -> Any:
    """Ask for scheduler passes until the goal's fate is decided, none of its consequences is in
    `unfinished`, and its user's notices went out. make dev's own scheduler may be mid-pass over
    this goal: a pass skips a goal another holds, so ask again until all is settled."""
    checked = None
    for _ in range(20):
        checked = http.post("/check_deadlines", headers=service, json={"source": "demo"})
        with db.as_service() as conn:
            settled = conn.execute(
                "select 1 from public.goals g where g.id = %s and g.status <> 'active'"
                " and not exists (select 1 from public.consequences c where c.goal_id = g.id"
                "                 and c.execution_status::text = any(%s))"
                " and not exists (select 1 from public.notifications n where n.user_id = g.user_id"
                "                 and n.status in ('queued', 'sending'))",
                [goal_id, list(unfinished)],
            ).fetchone()
        if settled:
            break
        time.sleep(0.25)
    return checked


def _console_decides_reuse(http: Any, say: Narrator, base_url: str) -> None:
    """A user sends the same photo for two checkpoints; an operator sees both in the console and
    decides, in headless Chromium when this machine has it (Debian's chromium and chromium-driver)."""
    from shared.dev.browser import binaries

    say.title("The same photo twice: an operator decides it in the console")
    user_id = uuid.uuid4()
    email = f"reuse-{user_id.hex[:8]}@example.com"
    with db.transaction() as conn:
        conn.execute("insert into auth.users (id, email, email_confirmed_at) values (%s, %s, now())", [user_id, email])
        conn.execute("select app.credit_deposit(%s, 2000, %s)", [user_id, f"pi_reuse_{user_id.hex[:12]}"])
    now = datetime.now(UTC)
    with db.as_user(user_id, email=email) as conn:
        goal = conn.execute(
            "insert into public.goals (user_id, title, final_deadline, grading_rubric, referee_type, monetary_stake,"
            " charity_destination) values (%s, 'Sketch every day', %s, 'A new sketch', 'ai', 20, 'givedirectly')"
            " returning id",
            [user_id, now + timedelta(days=30)],
        ).fetchone()
        assert goal is not None
        for position, days in ((1, 5), (2, 10)):
            conn.execute(
                "insert into public.checkpoints (goal_id, title, deadline, order_position) values (%s, %s, %s, %s)",
                [goal["id"], f"Sketch {position}", now + timedelta(days=days), position],
            )
    with db.as_service() as conn:
        conn.execute("select app.activate_goal(%s)", [goal["id"]])
        checkpoints = conn.execute(
            "select id from public.checkpoints where goal_id = %s and not is_final order by order_position",
            [goal["id"]],
        ).fetchall()
    user = {"Authorization": f"Bearer {mint_token(str(user_id), email=email, ttl_seconds=900)}"}
    photo = _photo()
    submitted = []
    for checkpoint in checkpoints:
        path = f"{user_id}/sketches/{uuid.uuid4().hex}.png"
        http.post(f"/storage/v1/object/proofs/{path}", headers=user, files={"": ("sketch.png", photo)})
        with db.as_user(user_id, email=email) as conn:
            row = conn.execute(
                "insert into public.submissions (checkpoint_id, user_id, submission_type, file_path)"
                " values (%s, %s, 'file', %s) returning id",
                [checkpoint["id"], user_id, path],
            ).fetchone()
        assert row is not None
        graded = http.post("/grade_submission", headers=user, json={"submission_id": str(row["id"])})
        submitted.append(row["id"])
    say.request("POST", "/grade_submission", {"submission_id": str(submitted[-1])}, graded)
    operator_id = uuid.uuid4()
    with db.transaction() as conn:
        conn.execute(
            "insert into auth.users (id, email, email_confirmed_at, raw_app_meta_data) values (%s, %s, now(), %s)",
            [operator_id, f"ops-{operator_id.hex[:8]}@example.com", db.Json({"role": "operator"})],
        )
    token = mint_token(str(operator_id), app_metadata={"role": "operator"}, ttl_seconds=900)
    console = f"{base_url}/operator_console"
    if binaries() is None:
        say.say(f"no Chromium here: open {console}, paste make dev's operator token, and decide it there")
        decision = {
            "action": "decide_submission",
            "submission_id": str(submitted[-1]),
            "decision": "pass",
            "reason": "A different sketch of the same scene: fine",
        }
        headers = {"Authorization": f"Bearer {token}"}
        say.request("POST", "/operator_review", decision, http.post("/operator_review", headers=headers, json=decision))
        return
    say.say(f"console: {console} (headless Chromium, signed in with a development operator token)")
    say.say("console: " + _decide_in_browser(console, token, submitted[-1]))


def _decide_in_browser(console: str, token: str, submission: Any) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from shared.dev.browser import chromium

    browser = chromium()
    try:
        wait = WebDriverWait(browser, 15)
        browser.get(console)
        wait.until(lambda d: d.find_element(By.ID, "token-form").is_displayed())
        browser.find_element(By.ID, "dev-token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        row = f'#items tr[data-id="{submission}"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, row))
        browser.find_element(By.CSS_SELECTOR, row).click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#evidence .side img")) == 2)
        browser.find_element(By.ID, "reason").send_keys("A different sketch of the same scene: fine")
        browser.find_element(By.CSS_SELECTOR, '#actions button[data-action="pass"]').click()
        wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("Decided"))
        return "both photos side by side; " + str(browser.find_element(By.ID, "status").text)
    finally:
        browser.quit()
