"""operator_console: the operators' page (GET), with its script and style (?asset=)."""

from __future__ import annotations

import flask
import functions_framework

from shared import console
from shared.config import get_settings
from shared.errors import not_found
from shared.http import Auth, Call, endpoint


@functions_framework.http
@endpoint("operator_console", auth=Auth.NONE, methods=("GET",))
def operator_console(call: Call[None]) -> flask.Response:
    settings = get_settings()
    name = call.request.args.get("asset")
    if name is None:
        body, mimetype = console.page(settings), "text/html; charset=utf-8"
    else:
        found = console.asset(name)
        if found is None:
            raise not_found("no such asset")
        body, mimetype = found
    return flask.Response(body, status=200, content_type=mimetype, headers=console.headers(settings))
