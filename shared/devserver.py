"""`make dev`'s server: every function under functions/, each through
functions-framework's own app, mounted at /<function_name> on one port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from shared import migrate
from shared.config import get_settings
from shared.db import UNAVAILABLE_ERRORS
from shared.localdb import REPO_ROOT

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
    except UNAVAILABLE_ERRORS:
        return {"status": "unhealthy", "database": "unreachable"}, 503
    except migrate.MigrationError as error:
        return {"status": "unhealthy", "database": "reachable", "migrations": str(error)}, 503
    body = {
        "status": "ok" if not waiting else "unhealthy",
        "database": "reachable",
        "migrations": {"applied": not waiting, "pending": waiting},
    }
    return body, 200 if not waiting else 503


def build_app(functions_dir: Path = FUNCTIONS_DIR) -> Any:
    """The WSGI app: /healthz on the root, one functions-framework app per function."""
    import functions_framework

    root = flask.Flask("threativator-dev")

    @root.get("/healthz")
    def healthz() -> flask.Response:
        body, status = health()
        return flask.make_response(flask.jsonify(body), status)

    @root.get("/")
    def index() -> flask.Response:
        names = sorted(function_sources(functions_dir))
        return flask.jsonify({"functions": [f"/{name}" for name in names], "health": "/healthz"})

    mounts = {
        f"/{name}": functions_framework.create_app(target=name, source=str(source))
        for name, source in function_sources(functions_dir).items()
    }
    return DispatcherMiddleware(root.wsgi_app, mounts)


def serve(host: str = "127.0.0.1", port: int = 8080) -> None:
    from werkzeug.serving import run_simple

    run_simple(host, port, build_app(), threaded=True, use_reloader=False)
