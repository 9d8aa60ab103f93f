"""`make dev`'s command starts from nothing, reports healthy, and stops cleanly on Ctrl-C, on a closed
terminal (SIGHUP) and on a process manager's SIGTERM, its database with it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from shared.dev import localdb
from shared.dev.browser import binaries
from tests import frontend


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_dev_stack_starts_fresh_serves_healthz_and_stops_on_ctrl_c(tmp_path: Path, repo_root: Path) -> None:
    proc, home, log, port, env = _start_dev(tmp_path, repo_root, cron_seconds="2")
    try:
        deadline = time.monotonic() + 90
        status, body = 0, None
        while time.monotonic() < deadline:
            try:
                status, body = _get_json(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.3)
        assert status == 200, body
        assert body == {
            "status": "ok",
            "database": "reachable",
            "migrations": {"applied": True, "pending": []},
        }
        database = localdb.url(home / "pgdata")
        assert database is not None
        token = re.search(r"development JWT \(7 days\):\n(\S+)", log.read_text())
        assert token is not None
        console = re.search(
            r"operator console: (\S+), with this development operator token \(7 days\):\n(\S+)", log.read_text()
        )
        assert console is not None and console.group(1) == f"http://127.0.0.1:{port}/operator_console"
        frontend.first_day(f"http://127.0.0.1:{port}", token.group(1), database)
        _run_demo_and_check_the_outbox(repo_root, env, port)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    output = log.read_text()
    assert proc.returncode == 0, output
    banner = "browser origins allowed (CORS_ORIGINS): " + ", ".join(
        f"http://{host}:{p}" for host in ("localhost", "127.0.0.1") for p in (3000, 5173, 8080)
    )
    assert banner in output
    assert re.search(r'"status": 5\d\d|" 5\d\d ', output) is None, output  # no 5xx answered anywhere
    assert "development JWT" in output
    assert "providers: stripe dry, sendgrid dry, gemini dry (needs_review), x dry" in output
    assert "[scheduler]" in output or '"function": "check_deadlines"' in output
    assert "local database stopped" in output
    assert localdb.url(home / "pgdata") is None


def _run_demo_and_check_the_outbox(repo_root: Path, env: dict[str, str], port: int) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "shared.dev.cli", "demo", "--fast", "--base-url", f"http://127.0.0.1:{port}"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    story = demo.stdout
    for step in ("[1] A user signs up", "[3] A submission", "[5] The scheduler runs", "[8] The user's notifications"):
        assert step in story
    # The roulette may take a share at checkpoint 2; the shares and the rest always add up to the stake.
    transfers = [float(amount) for amount in re.findall(r"transfer: \$(\d+\.\d\d) to GiveDirectly", story)]
    assert transfers and sum(transfers) == 30.0, story
    assert "email: Dana Demo missed a deadline → carl.critic@example.com" in story
    assert "consequence_notification: sent" in story
    assert "held for the contest window" in story  # the default window, wound forward by the demo
    # One consequence was contested; an operator read the queue and upheld it, with a reason.
    assert "[6] The user contests a consequence; an operator decides" in story
    assert '"why": "contested"' in story and '"decided": "execute"' in story
    # A pause asked for with notice waits it out, then applies (the akrasia horizon).
    assert "[9] Life happens: a pause, asked for with notice" in story
    assert "pause request: applied" in story
    # A user leaves with a checkpoint due inside the notice period: it stays due, then erasure.
    # The local pages a frontend developer clicks through: X's consent screen and the witness's link.
    assert "[10] Connecting X and asking a witness, clicked through the local pages" in story
    assert f"X consent page: http://127.0.0.1:{port}/app/x/authorize" in story
    assert f"'Allow' returns to: http://127.0.0.1:{port}/app/x/callback" in story
    assert f"witness page (from Wendy's email): http://127.0.0.1:{port}/app/witness" in story
    assert '"connected": true' in story and '"status": "awaiting_witness"' in story
    assert "[11] Leaving is allowed, escaping is not" in story
    assert "account erased: 0 row(s) still carry the email" in story
    # The demo ends with an operator deciding a reuse item in the console (in headless Chromium
    # where this machine has it).
    assert "[12] The same photo twice: an operator decides it in the console" in story
    if binaries() is not None:
        assert "console: both photos side by side; Decided: submission pass, now passed." in story, story
    else:
        assert '"decided": "pass"' in story
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        page = response.read().decode()
    assert "<h2>Outbox (what would have been sent)</h2>" in page
    assert "to GiveDirectly" in page and "carl.critic@example.com" in page
    assert "Write the demo chapter" in page and "Last scheduler runs" in page
    assert "<h2>Open review items (decide with operator_review, oldest first)</h2>" in page


def _start_dev(
    tmp_path: Path, repo_root: Path, *, cron_seconds: str = "0"
) -> tuple[subprocess.Popen[str], Path, Path, int, dict[str, str]]:
    """make dev as a developer runs it: its own defaults (a 24-hour contest window included)."""
    home, port, log = tmp_path / "home", _free_port(), tmp_path / "make-dev.log"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SUPABASE_", "ENVIRONMENT", "CONTEST_"))
    }
    env.update(THREATIVATOR_HOME=str(home), PYTHONUNBUFFERED="1", DEV_CRON_SECONDS=cron_seconds)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.dev.cli", "dev", "--port", str(port)],
        cwd=repo_root,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, home, log, port, env


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_dev_stack_stops_its_database_on_sigterm_and_sighup(
    tmp_path: Path, repo_root: Path, stop: signal.Signals
) -> None:
    proc, home, log, port, _ = _start_dev(tmp_path, repo_root)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if _get_json(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    break
            except OSError:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.3)
        assert localdb.url(home / "pgdata") is not None, log.read_text()
        proc.send_signal(stop)
        proc.wait(timeout=60)
        left_running = localdb.url(home / "pgdata") is not None
    finally:
        if proc.poll() is None:
            proc.kill()
        localdb.stop(home / "pgdata")  # whatever the outcome, no server outlives the test
    assert not left_running, log.read_text()  # the database stopped with the stack
    assert "local database stopped" in log.read_text()
