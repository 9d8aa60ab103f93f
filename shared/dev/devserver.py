"""`make dev`'s server: every function under functions/, each through
functions-framework's own app, mounted at /<function_name> on one port; a
read-only operator page at /; /healthz; and a scheduler thread that calls
check_deadlines every DEV_CRON_SECONDS, as Cloud Scheduler and pg_cron will."""

from __future__ import annotations

import html
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import flask

from shared import db
from shared.commitments import review
from shared.config import get_settings
from shared.dev import migrate
from shared.dev.localdb import REPO_ROOT

FUNCTIONS_DIR = REPO_ROOT / "functions"


def function_sources(functions_dir: Path = FUNCTIONS_DIR) -> dict[str, Path]:
    """{name: path to main.py} for every function folder."""
    return {
        path.parent.name: path
        for path in sorted(functions_dir.glob("*/main.py"))
        if not path.parent.name.startswith(("_", "."))
    }


def health() -> tuple[dict[str, Any], int]:
    """Whether the database answers and every migration is applied."""
    url = get_settings().database_url.get_secret_value()
    try:
        waiting = migrate.pending(url, local=True)
    except migrate.MigrationError as error:
        return {"status": "unhealthy", "database": "reachable", "migrations": str(error)}, 503
    except Exception as error:
        if db.is_unavailable(error):
            return {"status": "unhealthy", "database": "unreachable"}, 503
        raise
    body = {
        "status": "ok" if not waiting else "unhealthy",
        "database": "reachable",
        "migrations": {"applied": not waiting, "pending": waiting},
    }
    return body, 200 if not waiting else 503


def provider_modes() -> dict[str, str]:
    """Which providers are live (a key is set) and which run dry into the outbox."""
    s = get_settings()
    return {
        "stripe": "live" if s.stripe_secret_key else "dry",
        "sendgrid": "live" if s.sendgrid_api_key else "dry",
        "gemini": "live" if s.gemini_api_key else "dry (needs_review)",
        "x": "live" if s.x_client_id else "dry",
    }


# -----------------------------------------------------------------------------
# The operator page: plain server-rendered HTML, read-only, development only.
# -----------------------------------------------------------------------------
_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;"
    "margin-bottom:2rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}h2{margin-top:2rem}code{font-size:12px}"
)


def _table(title: str, rows: list[dict[str, Any]], columns: Iterable[str]) -> str:
    cols = list(columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = (
        "".join(
            "<tr>"
            + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in cols)
            + "</tr>"
            for r in rows
        )
        or f'<tr><td colspan="{len(cols)}">nothing yet</td></tr>'
    )
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def operator_page() -> str:
    with db.as_service() as conn:
        goals = conn.execute(
            "select g.title as goal, g.status::text as goal_status, cp.order_position as n, cp.title as checkpoint,"
            " cp.deadline, cp.status::text as status, cp.is_final as final from public.goals g"
            " join public.checkpoints cp on cp.goal_id = g.id order by g.created_at desc, cp.order_position"
            " limit 200"
        ).fetchall()
        consequences = conn.execute(
            "select c.consequence_type::text as type, c.execution_status::text as status, c.attempts,"
            " c.execute_after, c.contest_status::text as contest,"
            " c.monetary_amount as amount, c.provider_reference, c.last_error, c.next_attempt_at, c.executed_at,"
            " g.title as goal from public.consequences c join public.goals g on g.id = c.goal_id"
            " order by c.triggered_at desc limit 100"
        ).fetchall()
        outbox = conn.execute(
            "select created_at, channel, recipient, summary from public.dev_outbox order by id desc limit 100"
        ).fetchall()
        runs = conn.execute(
            "select occurred_at, details from public.audit_log where entity = 'scheduler'"
            " and action = 'run' order by id desc limit 10"
        ).fetchall()
    run_rows = [
        {
            "at": r["occurred_at"],
            **{k: v for k, v in r["details"].items() if k != "notifications"},
            "notifications": json.dumps(r["details"].get("notifications", {})),
        }
        for r in runs
    ]
    queue = [
        {
            "since": item.since,
            "kind": item.kind,
            "why": item.why,
            "goal": item.goal_title,
            "id": item.id,
            "detail": item.contest_reason or (item.findings or {}).get("reason"),
        }
        for item in review.open_items(100).items
    ]
    modes = ", ".join(f"{name}: {mode}" for name, mode in provider_modes().items())
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Threativator (development)</title>"
        f"<style>{_STYLE}</style></head><body><h1>Threativator: local stack</h1>"
        f"<p>Providers: {html.escape(modes)}. This page is read-only and exists only in development.</p>"
        + _table(
            "Open review items (decide with operator_review, oldest first)",
            queue,
            ["since", "kind", "why", "goal", "id", "detail"],
        )
        + _table(
            "Goals and checkpoints", goals, ["goal", "goal_status", "n", "checkpoint", "deadline", "status", "final"]
        )
        + _table(
            "Consequences",
            consequences,
            [
                "goal",
                "type",
                "status",
                "execute_after",
                "contest",
                "attempts",
                "amount",
                "provider_reference",
                "last_error",
                "next_attempt_at",
                "executed_at",
            ],
        )
        + _table("Outbox (what would have been sent)", outbox, ["created_at", "channel", "recipient", "summary"])
        + _table(
            "Last scheduler runs",
            run_rows,
            [
                "at",
                "detected",
                "checkpoints_missed",
                "spared",
                "goals_failed",
                "consequences_created",
                "dispatched",
                "failures",
                "notifications",
            ],
        )
        + "</body></html>"
    )


def build_app(functions_dir: Path = FUNCTIONS_DIR, *, dev_jwt: str = "") -> Any:
    """The WSGI app: / and /healthz on the root, the local stand-in pages (shared.dev.pages), and one
    functions-framework app per function."""
    import functions_framework

    from shared.dev import pages

    root = flask.Flask("threativator-dev")
    root.config["DEV_JWT"] = dev_jwt
    if get_settings().environment != "production":
        pages.register(root)

    @root.get("/healthz")
    def healthz() -> flask.Response:
        body, status = health()
        return flask.make_response(flask.jsonify(body), status)

    @root.get("/")
    def index() -> flask.Response:
        if get_settings().environment == "production":
            flask.abort(404)
        return flask.Response(operator_page(), mimetype="text/html")

    mounts = {
        name: functions_framework.create_app(target=name, source=str(source))
        for name, source in function_sources(functions_dir).items()
    }
    return Dispatcher(root.wsgi_app, mounts)


class Dispatcher:
    """Sends /<function_name>[/...] to that function's app as its own "/", the way Cloud Functions does."""

    def __init__(self, root: Any, mounts: dict[str, Any]) -> None:
        self.root = root
        self.mounts = mounts

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "") or "/"
        name, _, rest = path.lstrip("/").partition("/")
        app = self.mounts.get(name)
        if app is None:
            return self.root(environ, start_response)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + name
        environ["PATH_INFO"] = "/" + rest
        return app(environ, start_response)


class DevScheduler(threading.Thread):
    """Calls check_deadlines over HTTP with a service credential every `interval` seconds."""

    def __init__(self, base_url: str, interval: float) -> None:
        super().__init__(name="dev-scheduler", daemon=True)
        self.url = f"{base_url}/check_deadlines"
        self.interval = interval
        self.stopped = threading.Event()

    def _token(self) -> str:
        settings = get_settings()
        credential = settings.service_credential()
        if credential is not None:
            return credential
        from shared.auth import mint_token

        return mint_token(None, role="service_role", ttl_seconds=600)

    def tick(self) -> dict[str, Any] | None:
        request = urllib.request.Request(  # noqa: S310 - our own loopback URL
            self.url,
            data=json.dumps({"source": "dev"}).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token()}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
                result: dict[str, Any] = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as error:
            print(f"[scheduler] check_deadlines failed: {type(error).__name__}", flush=True)
            return None
        keys = result.get("keys") or {}
        quiet = not (keys.get("rewrapped") or keys.get("rotation_due") or keys.get("destroy_now"))
        busy = {k: v for k, v in result.items() if v and k != "notifications" and not (k == "keys" and quiet)}
        if busy or result.get("notifications"):
            print(f"[scheduler] {busy} {result.get('notifications') or ''}", flush=True)
        return result

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.tick()


def serve(
    host: str = "127.0.0.1", port: int = 8080, *, scheduler_seconds: float | None = None, dev_jwt: str = ""
) -> None:
    from werkzeug.serving import make_server

    server = make_server(host, port, build_app(dev_jwt=dev_jwt), threaded=True)
    scheduler = None
    if scheduler_seconds:
        scheduler = DevScheduler(f"http://{host}:{port}", scheduler_seconds)
        scheduler.start()
    try:
        server.serve_forever()
    finally:
        if scheduler is not None:
            scheduler.stopped.set()
        server.server_close()


def dev_cron_seconds() -> float:
    return float(os.environ.get("DEV_CRON_SECONDS", "60"))
