"""The cold-start baseline: a hello-world functions-framework function."""

import flask
import functions_framework


@functions_framework.http
def hello(request: flask.Request) -> flask.Response:
    return flask.jsonify({"hello": "world"})
