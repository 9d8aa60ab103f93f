"""deploy.sh --dry-run with a stand-in gcloud that records its arguments, and the
staged bundles served from fresh virtualenvs built from their own requirements."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

FUNCTIONS = [
    "change_goal",
    "check_deadlines",
    "connect_x",
    "contest_consequence",
    "delete_account",
    "grade_submission",
    "holding_cell",
    "operator_console",
    "operator_review",
    "send_notification",
    "stripe_webhook",
    "trigger_consequence",
    "upload_kompromat",
]
# Values that would be secrets: none may appear on a command line, in output or in a staged file.
SENTINELS = {
    "STRIPE_SECRET_KEY": "sk_live_SENTINEL_stripe",
    "SENDGRID_API_KEY": "SG.SENTINEL_sendgrid",
    "SUPABASE_JWT_SECRET": "SENTINEL_jwt_secret_value_0123456789abcdef",
    "SUPABASE_SERVICE_ROLE_KEY": "SENTINEL_service_role",
    "DATABASE_URL": "postgresql://u:SENTINEL_pw@db/x",
    "GEMINI_API_KEY": "SENTINEL_gemini",
    "KOMPROMAT_KEYS": "k1:SENTINEL",
    "LINK_SIGNING_SECRET": "SENTINEL_link",
}
SETTINGS = {
    "SUPABASE_URL": "https://abcd.supabase.co",
    "APP_BASE_URL": "https://app.threativator.com",
    "CORS_ORIGINS": "https://app.threativator.com",
    "X_CLIENT_ID": "x-client",
    "X_REDIRECT_URI": "https://app.threativator.com/x/callback",
    "CHARITY_ACCOUNTS": '{"givedirectly": "acct_1"}',
}

STAND_IN = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$GCLOUD_LOG"
case "$*" in
  *"secrets describe $GCLOUD_MISSING_SECRET"*) exit 1 ;;
  "scheduler jobs describe"*) exit 1 ;;
esac
exit 0
"""


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("bin")
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(STAND_IN)
    gcloud.chmod(0o755)
    return bin_dir


def deploy(
    repo_root: Path,
    stand_in: Path,
    log: Path,
    *args: str,
    env: dict[str, str] | None = None,
    missing_secret: str = "none",
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        **SENTINELS,
        **SETTINGS,
        **(env or {}),
        "GCLOUD_LOG": str(log),
        "GCLOUD_MISSING_SECRET": missing_secret,
        "PATH": f"{stand_in}:{os.environ['PATH']}",
    }
    return subprocess.run(
        ["bash", str(repo_root / "deploy.sh"), *args],
        cwd=repo_root,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def dry_run(repo_root: Path, stand_in: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    log = tmp_path_factory.mktemp("log") / "gcloud.log"
    first = deploy(repo_root, stand_in, log, "--dry-run", "--project", "proj", "--region", "europe-west1")
    assert first.returncode == 0, first.stderr
    second = deploy(repo_root, stand_in, log, "--dry-run", "--project", "proj", "--region", "europe-west1")
    return {"out": first.stdout, "again": second.stdout, "log": log.read_text()}


def _commands(out: str) -> list[str]:
    return [line[2:] for line in out.splitlines() if line.startswith("+ ")]


def test_deploy_dry_run_deploys_every_function(dry_run: dict[str, Any]) -> None:
    deploys = {c.split()[3]: c for c in _commands(dry_run["out"]) if c.startswith("gcloud functions deploy")}
    assert sorted(deploys) == FUNCTIONS
    for name, command in deploys.items():
        for part in (
            "--gen2",
            "--runtime=python312",
            f"--entry-point={name}",
            "--trigger-http",
            "--region=europe-west1",
            "--service-account=threativator-functions@proj.iam.gserviceaccount.com",
            "DATABASE_URL=DATABASE_URL:latest",
        ):
            assert part in command, (name, part)
        assert f"--source={Path('build/functions') / name}" in command.replace(str(Path.cwd()) + "/", "")
        private = name == "trigger_consequence"
        assert ("--no-allow-unauthenticated" in command) == private
        assert ("--allow-unauthenticated" in command.split()) == (not private)
    assert "--min-instances=1" in deploys["stripe_webhook"] and "--timeout=540s" in deploys["check_deadlines"]
    assert "STRIPE_SECRET_KEY=STRIPE_SECRET_KEY:latest" in deploys["trigger_consequence"]
    assert any(
        c.startswith("gcloud functions add-invoker-policy-binding trigger_consequence")
        and "threativator-functions@proj" in c
        for c in _commands(dry_run["out"])
    )


def test_deploy_scheduler_uses_oidc(dry_run: dict[str, Any]) -> None:
    [job] = [c for c in _commands(dry_run["out"]) if c.startswith("gcloud scheduler jobs")]
    assert job.startswith("gcloud scheduler jobs create http check-deadlines")
    url = "https://europe-west1-proj.cloudfunctions.net/check_deadlines"
    assert "--oidc-service-account-email=threativator-scheduler@proj.iam.gserviceaccount.com" in job
    assert f"--oidc-token-audience={url}" in job and f"--uri={url}" in job
    assert "--schedule=\\*/5\\ \\*\\ \\*\\ \\*\\ \\*" in job or "--schedule=*/5 * * * *" in job


def test_deploy_puts_no_secret_anywhere(dry_run: dict[str, Any], repo_root: Path) -> None:
    staged = "".join(
        p.read_text(errors="replace")
        for p in (repo_root / "build/functions").rglob("*")
        if p.is_file() and p.suffix in (".yaml", ".txt", ".py")
    )
    for name, value in SENTINELS.items():
        for where, text in (("output", dry_run["out"]), ("gcloud args", dry_run["log"]), ("staged files", staged)):
            assert value not in text, f"{name} leaked into {where}"
    assert "secrets describe STRIPE_SECRET_KEY" in dry_run["log"]  # it did check the secret exists
    assert not any(
        line.startswith(("functions deploy", "scheduler jobs create")) for line in dry_run["log"].splitlines()
    ), "a dry run changed something"


def test_bundles_carry_no_dev_tooling(dry_run: dict[str, Any], repo_root: Path) -> None:
    for name in FUNCTIONS:
        bundle = repo_root / "build/functions" / name
        assert (bundle / "shared" / "db.py").is_file()
        assert not (bundle / "shared" / "dev").exists(), f"{name} ships shared/dev"
        staged = [p for p in (bundle / "shared").rglob("*.py") if "dev" in p.relative_to(bundle / "shared").parts]
        assert staged == []


def test_deploy_dry_run_is_repeatable(dry_run: dict[str, Any]) -> None:
    assert dry_run["out"] == dry_run["again"]


def test_deploy_refuses_without_settings_secrets_or_tools(repo_root: Path, stand_in: Path, tmp_path: Path) -> None:
    log = tmp_path / "gcloud.log"
    no_project = deploy(repo_root, stand_in, log, "--dry-run", "--region", "r")
    assert no_project.returncode != 0 and "--project is required" in no_project.stderr
    no_setting = deploy(
        repo_root, stand_in, log, "--dry-run", "--project", "p", "--region", "r", env={"APP_BASE_URL": ""}
    )
    assert no_setting.returncode != 0 and "setting APP_BASE_URL is not set" in no_setting.stderr
    no_secret = deploy(
        repo_root, stand_in, log, "--dry-run", "--project", "p", "--region", "r", missing_secret="GEMINI_API_KEY"
    )
    assert no_secret.returncode != 0 and "secret GEMINI_API_KEY is missing" in no_secret.stderr
    no_gcloud = deploy(
        repo_root,
        stand_in,
        log,
        "--dry-run",
        "--project",
        "p",
        "--region",
        "r",
        env={"GCLOUD": str(tmp_path / "no-such-gcloud")},
    )
    assert no_gcloud.returncode != 0 and "gcloud is not installed" in no_gcloud.stderr


def test_shell_scripts_pass_shellcheck(repo_root: Path) -> None:
    scripts = [repo_root / "deploy.sh", repo_root / ".ci/run"]
    result = subprocess.run(
        [str(repo_root / ".venv/bin/shellcheck"), *map(str, scripts)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


# Modules each bundle loads on the paths that import lazily.
LAZY_IMPORTS = {
    "grade_submission": ["google.genai", "supabase", "bs4", "docx", "filetype", "sendgrid", "urllib3"],
    "trigger_consequence": ["stripe", "sendgrid", "tweepy", "httpx", "google.oauth2.id_token", "cryptography"],
    "send_notification": ["sendgrid", "google.oauth2.id_token"],
    "check_deadlines": [
        "sendgrid",
        "google.oauth2.id_token",
        "httpx",
        "google.genai",
        "supabase",
        "bs4",
        "urllib3",
        "stripe",
    ],
    "holding_cell": ["stripe"],
    "operator_console": [],
    "stripe_webhook": ["stripe"],
    "upload_kompromat": ["filetype", "cryptography"],
    "connect_x": ["httpx", "cryptography"],
    "contest_consequence": [],
    "operator_review": ["sendgrid", "stripe", "supabase", "PIL", "bs4"],
    "change_goal": [],
    "delete_account": [],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("name", FUNCTIONS)
def test_bundle_serves_from_its_own_requirements(
    dry_run: dict[str, Any], repo_root: Path, tmp_path: Path, name: str
) -> None:
    bundle = repo_root / "build/functions" / name
    venv = tmp_path / "venv"
    uv = str(repo_root / ".venv/bin/uv")
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], check=True, capture_output=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin/python"), "-r", str(bundle / "requirements.txt")],
        check=True,
        capture_output=True,
        timeout=600,
    )
    imports = "; ".join(f"import {m}" for m in LAZY_IMPORTS[name])
    subprocess.run(
        [str(venv / "bin/python"), "-c", f"import main; {imports}"],
        cwd=bundle,
        check=True,
        capture_output=True,
        env={"PATH": os.environ["PATH"]},
    )
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "ENVIRONMENT": "test",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x",
        "SUPABASE_URL": "http://127.0.0.1:1",
        "SUPABASE_JWT_SECRET": "x" * 40,
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
    }
    server = subprocess.Popen(
        [str(venv / "bin/functions-framework"), "--target", name, "--source", "main.py", "--port", str(port)],
        cwd=bundle,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body: dict[str, Any] = {}
        for _ in range(100):
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/", data=b"{}", method="POST", headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - loopback
                    pass
            except urllib.error.HTTPError as error:
                status, body = error.code, json.loads(error.read())
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the bundle never answered")
        assert status in (400, 401, 405, 415)  # 405: the console's page answers GET only
        assert set(body["error"]) == {"code", "message", "details"}
        if name == "operator_console":
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/?asset=console.js", timeout=5) as page:
                assert page.status == 200 and b"use strict" in page.read()  # the assets travel in the bundle
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_deploy_dry_run_lists_the_stripe_events_the_handler_applies(dry_run: dict[str, Any]) -> None:
    """The endpoint's events are configured from the handler's own list, and the dry run shows it."""
    from shared.money.stripe_events import DISPUTE_STEPS, HANDLED_EVENTS, REFUND_EVENTS

    [line] = [row for row in dry_run["out"].splitlines() if row.startswith("Stripe webhook endpoint ")]
    url, _, events = line.removeprefix("Stripe webhook endpoint ").partition(" receives: ")
    assert url == "https://europe-west1-proj.cloudfunctions.net/stripe_webhook"
    assert events.split() == list(HANDLED_EVENTS)
    assert {"payment_intent.succeeded", "transfer.reversed", *REFUND_EVENTS, *DISPUTE_STEPS} == set(HANDLED_EVENTS)
    assert any(c.endswith(f"stripe-webhook --url {url}") for c in _commands(dry_run["out"]))
