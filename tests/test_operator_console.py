"""The operator console (operator_console): its page and headers over HTTP, then a real browser.

The browser test drives Debian's headless Chromium (packages chromium and chromium-driver; .ci/run
installs them, since CI runs as root). Where the binaries are absent it is skipped, and says so.
It signs in through a Supabase Auth stand-in's REST API, opens a reuse item and sees both proofs,
decides it with a reason, cancels a contested consequence from the keyboard, resolves a money item,
and shows a hostile proof inert. UPDATE_SCREENSHOTS=1 writes its screenshots to docs/operators/."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from werkzeug import Request, Response
from werkzeug.serving import make_server

from shared.auth import mint_token
from shared.config import get_settings
from shared.dev.browser import binaries, chromium
from tests import factories as f
from tests.http_helpers import client
from tests.images import PNG
from tests.test_contest import _contest, _failed_goal
from tests.test_engine import Conn
from tests.test_grading import Stack, as_user, file_submission, grade
from tests.test_grading import stack as stack
from tests.test_proof_reuse import _second_checkpoint_submission

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "operators"
HOSTILE_TEXT = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2; document.title="pwned"</script>'


# -----------------------------------------------------------------------------
# The page over HTTP (no browser needed)
# -----------------------------------------------------------------------------
def test_the_page_loads_nothing_from_elsewhere_and_forbids_inline_script(database: str) -> None:
    console = client("operator_console")
    page = console.get("/")
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy and "img-src data:" in policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    # Scripts: the config (data, never run) and the console's own file, from this origin.
    assert html.count("<script") == 2 and 'src="?asset=console.js"' in html
    assert 'src="http' not in html and 'href="http' not in html and "//" not in html.replace("http://", "")
    config = json.loads(html.split('id="config">')[1].split("</script>")[0])
    assert config["supabase_url"] == get_settings().supabase_url.rstrip("/") and config["development_token"] is True
    script = console.get("/?asset=console.js")
    assert script.status_code == 200 and script.content_type.startswith("text/javascript")
    assert "innerHTML" not in script.get_data(as_text=True)  # everything shown is set as text
    assert console.get("/?asset=../config.py").status_code == 404
    assert console.post("/", json={}).status_code == 405


def test_production_offers_no_development_token(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("CORS_ORIGINS", "https://app.example.com")
    monkeypatch.setenv("SUPABASE_PUBLISHABLE_KEY", "sb_publishable_console")
    monkeypatch.setenv("OPERATOR_REVIEW_URL", "https://review.example.run.app/")
    get_settings.cache_clear()
    page = client("operator_console").get("/")
    html = page.get_data(as_text=True)
    config = json.loads(html.split('id="config">')[1].split("</script>")[0])
    assert config["development_token"] is False and config["publishable_key"] == "sb_publishable_console"
    # operator_review on an origin of its own: the page may talk to it, and to nothing else new.
    assert config["review_url"] == "https://review.example.run.app/"
    connect = next(d for d in page.headers["Content-Security-Policy"].split("; ") if d.startswith("connect-src"))
    assert connect == f"connect-src 'self' {get_settings().supabase_url.rstrip('/')} https://review.example.run.app"


# -----------------------------------------------------------------------------
# In a real browser
# -----------------------------------------------------------------------------
browser_only = pytest.mark.skipif(
    binaries() is None,
    reason="SKIPPED, NOT RUN: Debian's chromium and chromium-driver are not installed here"
    " (.ci/run installs them when it runs as root)",
)


@pytest.fixture
def console_url(stack: Stack) -> Iterator[str]:
    """The whole local stack (every function, as make dev serves them) on a real port."""
    from shared.dev.devserver import build_app

    server = make_server("127.0.0.1", 0, build_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/operator_console"
    server.shutdown()


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


def _auth_stand_in(stack: Stack, token: str) -> None:
    """Supabase Auth's password grant, as its REST API answers it, allowing the page's origin."""

    def answer(request: Request) -> Response:
        cors = {
            "Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
            "Access-Control-Allow-Headers": "content-type, apikey",
            "Access-Control-Allow-Methods": "POST",
        }
        if request.method == "OPTIONS":
            return Response(status=204, headers=cors)
        body = request.get_json()
        if request.args.get("grant_type") != "password" or request.headers.get("apikey") != "sb_publishable_test":
            return Response(
                json.dumps({"error": "invalid_request"}), 400, headers=cors, content_type="application/json"
            )
        if body != {"email": "olive@threativator.test", "password": "correct horse"}:
            return Response(
                json.dumps({"error": "invalid_grant", "error_description": "Invalid login credentials"}),
                400,
                headers=cors,
                content_type="application/json",
            )
        session = {"access_token": token, "token_type": "bearer", "expires_in": 3600, "refresh_token": "r"}
        return Response(json.dumps(session), 200, headers=cors, content_type="application/json")

    stack.server.expect_request("/auth/v1/token").respond_with_handler(answer)

    def otp(request: Request) -> Response:
        cors = {
            "Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
            "Access-Control-Allow-Headers": "content-type, apikey",
            "Access-Control-Allow-Methods": "POST",
        }
        return Response(
            "{}" if request.method == "POST" else "",
            200 if request.method == "POST" else 204,
            headers=cors,
            content_type="application/json",
        )

    stack.server.expect_request("/auth/v1/otp").respond_with_handler(otp)


def _wait(driver: Any, condition: Any, timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _text(driver: Any, element_id: str) -> str:
    return str(driver.find_element("id", element_id).text)


def _open(driver: Any, item: UUID) -> None:
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'#items tr[data-id="{item}"]'))
    driver.find_element(By.CSS_SELECTOR, f'#items tr[data-id="{item}"]').click()
    _wait(driver, lambda d: d.find_element("id", "item").is_displayed() and _text(d, "item-title"))


def _decided(driver: Any) -> str:
    _wait(driver, lambda d: _text(d, "status").startswith("Decided"))
    return _text(driver, "status")


def _shot(driver: Any, name: str, tmp_path: Path) -> None:
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(folder / name))
    assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@browser_only
def test_an_operator_decides_from_the_console_in_a_real_browser(
    stack: Stack,
    owner: Conn,
    console_url: str,
    browser: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    monkeypatch.setenv("SUPABASE_PUBLISHABLE_KEY", "sb_publishable_test")
    monkeypatch.setenv("CONTEST_WINDOW_HOURS", "24")
    get_settings.cache_clear()
    # A reuse item: the same picture for a second checkpoint.
    alice = f.user(owner, "alice")
    first = file_submission(owner, stack, alice, PNG, path="c/1.png")
    assert grade(first, as_user(alice)).json["status"] == "passed"
    reused = _second_checkpoint_submission(owner, stack, alice, PNG, "c/2.png")
    assert grade(reused, as_user(alice)).json["status"] == "needs_review"
    # A contested consequence, a money item, and a hostile proof (markup in the page and the title).
    user, _, consequence = _failed_goal(owner)
    assert _contest(user, consequence["id"], "My upload went in at 23:58").status_code == 200
    item = owner.execute(
        "insert into public.money_items (kind, source_id, cents) values ('unknown_transaction', 'adj_console', 700)"
        " returning id"
    ).fetchone()
    assert item is not None
    mallory = f.user(owner, "mallory")
    goal = f.goal(owner, mallory, checkpoints=1)
    owner.execute("update public.goals set title = %s where id = %s", [HOSTILE_TEXT, goal])
    hostile = f.submission(owner, mallory, f.checkpoint_ids(owner, goal)[0], status="needs_review")
    page = f"<html><body><main><p>{HOSTILE_TEXT.replace('<', '&lt;')}</p></main></body></html>".encode()
    owner.execute(
        "insert into public.proof_captures (submission_id, content, content_type, sha256) values (%s, %s, %s, %s)",
        [hostile, page, "text/html", hashlib.sha256(page).hexdigest()],
    )
    owner.execute(
        "update public.submissions set proof_sha256 = %s, ai_analysis_result = %s where id = %s",
        [hashlib.sha256(page).hexdigest(), json.dumps({"reason": HOSTILE_TEXT}), hostile],
    )
    operator = f.user(owner, "olive")
    _auth_stand_in(stack, mint_token(str(operator), app_metadata={"role": "operator"}))

    # Signing in: a magic link is asked for, to come back here; a wrong password is refused with
    # Supabase's words; the right one opens the queue.
    browser.get(console_url)
    _wait(browser, lambda d: d.find_element("id", "sign-in").is_displayed())
    browser.find_element("id", "email").send_keys("olive@threativator.test")
    browser.find_element("id", "magic-link").click()
    _wait(browser, lambda d: "A sign-in link is on its way" in _text(d, "status"))
    [otp] = [r for r, _ in stack.server.log if r.path == "/auth/v1/otp" and r.method == "POST"]
    assert otp.get_json() == {"email": "olive@threativator.test", "create_user": False}
    assert otp.args["redirect_to"] == console_url and otp.headers["apikey"] == "sb_publishable_test"
    browser.find_element("id", "password").send_keys("wrong")
    browser.find_element(By.CSS_SELECTOR, "#password-form button[type=submit]").click()
    _wait(browser, lambda d: "Invalid login credentials" in _text(d, "status"))
    browser.find_element("id", "password").clear()
    browser.find_element("id", "password").send_keys("correct horse")
    browser.find_element(By.CSS_SELECTOR, "#password-form button[type=submit]").click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#items tr")) == 4)
    assert "4 open" in _text(browser, "counts")
    _shot(browser, "queue.png", tmp_path)

    # The reuse item: both proofs, side by side, as the image bytes captured.
    _open(browser, reused)
    sides = browser.find_elements(By.CSS_SELECTOR, "#evidence .side")
    assert [s.find_element(By.TAG_NAME, "h3").text for s in sides] == ["This proof", "Seen before"]
    for side in sides:
        [image] = side.find_elements(By.TAG_NAME, "img")
        assert image.get_attribute("src").startswith("data:image/png;base64,")
        assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
    assert "exact_reuse" in _text(browser, "facts")
    _shot(browser, "item.png", tmp_path)
    # No decision without a reason.
    browser.find_element(By.CSS_SELECTOR, '#actions button[data-action="pass"]').click()
    _wait(browser, lambda d: _text(d, "status") == "A decision needs a reason.")
    assert owner.execute("select status::text from public.submissions where id = %s", [reused]).fetchone() == {
        "status": "needs_review"
    }
    browser.find_element("id", "reason").send_keys("Same drawing, but for the next chapter's outline: fine")
    browser.find_element(By.CSS_SELECTOR, '#actions button[data-action="pass"]').click()
    assert "passed" in _decided(browser)
    assert owner.execute("select status::text from public.submissions where id = %s", [reused]).fetchone() == {
        "status": "passed"
    }

    # The contested consequence, from the keyboard: reason, Escape, then c.
    _open(browser, consequence["id"])
    assert "My upload went in at 23:58" in _text(browser, "facts")
    reason = browser.find_element("id", "reason")
    reason.send_keys("The upload log shows 23:58, before the deadline")
    reason.send_keys(Keys.ESCAPE)
    browser.find_element(By.TAG_NAME, "body").send_keys("c")
    assert "canceled" in _decided(browser)
    row = owner.execute("select execution_status::text, decision_reason from public.consequences").fetchone()
    assert row == {"execution_status": "canceled", "decision_reason": "The upload log shows 23:58, before the deadline"}

    # The money item, resolved with a note.
    _open(browser, item["id"])
    browser.find_element("id", "reason").send_keys("A Stripe fee adjustment, booked by hand")
    browser.find_element(By.CSS_SELECTOR, '#actions button[data-action="note"]').click()
    _decided(browser)
    resolved = owner.execute("select resolution from public.money_items where id = %s", [item["id"]]).fetchone()
    assert resolved == {"resolution": "A Stripe fee adjustment, booked by hand"}

    # The hostile proof is shown as text: nothing in it runs, nothing loads.
    _open(browser, hostile)
    shown = browser.find_element(By.CSS_SELECTOR, "#evidence pre.proof-text").text
    assert "<script>" in shown and "onerror" in shown
    assert HOSTILE_TEXT in _text(browser, "facts")  # the goal's title and the grader's reason, literally
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.title == "Threativator operators"
    assert browser.find_elements(By.CSS_SELECTOR, "#item img, #item script") == []
    scripts = [s.get_attribute("src") for s in browser.find_elements(By.TAG_NAME, "script")]
    assert [s for s in scripts if s and not s.startswith(console_url.rsplit("/", 1)[0])] == []
    # Even markup the page itself were to inject cannot run: the policy forbids inline script.
    ran = browser.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.__pwned = 3';"
        " document.body.append(s); return window.__pwned === undefined"
    )
    assert ran is True
