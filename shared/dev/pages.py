"""`make dev`'s stand-ins for what the frontend, X's consent screen and Supabase Storage provide, so
every flow can be clicked through on one machine with no account anywhere (development only):

- /app/witness?token=…            the page a witness's emailed link opens; its button sends the
                                  verdict to grade_submission as the frontend's page would
- /app/x/authorize?…              X's consent screen: "Allow" redirects to X_REDIRECT_URI with a code
                                  and the state, exactly as X does; "Cancel" with error=access_denied
- /app/x/callback?code=…&state=…  the frontend's redirect page: it completes connect_x's callback
- /app/contacts/confirm|decline, /app/unsubscribe   the other emailed links, through /app/rpc/<name>
                                  (PostgREST's rpc/ for the three functions anon may call)
- /storage/v1/object/<bucket>/<path>   Storage's upload and download API over DEV_STORAGE_DIR

Every value shown is escaped; values scripts need travel in data- attributes, never in code.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import secrets
import urllib.parse
from typing import Any

import flask

from shared import db
from shared.config import get_settings

ANON_RPCS = ("confirm_contact", "decline_contact", "unsubscribe_reminders")

_STYLE = (
    "body{font:16px system-ui,sans-serif;max-width:40rem;margin:3rem auto;color:#222;padding:0 1rem}"
    "button{font:inherit;padding:.5rem 1.2rem;margin-right:.5rem}textarea,input{font:inherit;width:100%}"
    "pre{background:#f4f4f4;padding:.8rem;white-space:pre-wrap;word-break:break-all}.note{color:#666}"
)

# One small script for every page: a button with data-function posts data-body (JSON) to that
# function, or to data-url, with the JWT field's value as the bearer when there is one.
_SCRIPT = """
document.querySelectorAll("button[data-body]").forEach(function (button) {
  button.addEventListener("click", async function () {
    var body = JSON.parse(button.dataset.body);
    var comment = document.getElementById("comment");
    if (comment && comment.value) { body.comment = comment.value; }
    var headers = {"Content-Type": "application/json"};
    var jwt = document.getElementById("jwt");
    if (jwt && jwt.value) { headers["Authorization"] = "Bearer " + jwt.value.trim(); }
    var out = document.getElementById("result");
    try {
      var response = await fetch(button.dataset.url, {method: "POST", headers: headers, body: JSON.stringify(body)});
      out.textContent = response.status + " " + JSON.stringify(await response.json(), null, 2);
    } catch (error) {
      out.textContent = "Failed to fetch: " + error;
    }
  });
});
"""


def _page(title: str, body: str) -> flask.Response:
    text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} (development)</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
        "<p class='note'>A development page served by <code>make dev</code>; in production the frontend"
        " (or X) serves this step.</p><pre id='result'></pre>"
        f"<script>{_SCRIPT}</script></body></html>"
    )
    response = flask.Response(text, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:"
    )
    response.headers["Referrer-Policy"] = "no-referrer"  # tokens in the query stay on this page
    return response


def _button(label: str, url: str, body: dict[str, Any]) -> str:
    return (
        f"<button data-url='{html.escape(url, quote=True)}' data-body='{html.escape(json.dumps(body), quote=True)}'>"
        f"{html.escape(label)}</button>"
    )


def read_button(page: str) -> tuple[str, dict[str, Any]]:
    """What a page's button sends (its data-url and data-body), read as the browser reads them: for
    the demo and the tests, which click through these pages without a browser."""
    import re

    match = re.search(r"data-url='([^']*)' data-body='([^']*)'", page)
    if match is None:
        raise ValueError("the page has no button")
    return html.unescape(match.group(1)), json.loads(html.unescape(match.group(2)))


def _unverified_claim(token: str, claim: str) -> str | None:
    """A claim read for display only; grade_submission verifies the token when the button is pressed."""
    import jwt

    try:
        value = jwt.decode(token, options={"verify_signature": False}).get(claim)
    except jwt.PyJWTError:
        return None
    return str(value) if value is not None else None


def _witness_proof_html(token: str) -> str:
    """The proof as grade_submission's witness_proof answers it (what a frontend shows before the buttons)."""
    from shared.errors import ApiError
    from shared.proof import grading

    try:
        shown = grading.witness_proof(grading.WitnessProofRequest(action="witness_proof", token=token))
    except ApiError as error:
        return f"<p><b>The proof cannot be shown:</b> {html.escape(error.message)}</p>"
    parts = [
        f"<h2>{html.escape(shown.goal_title)}: {html.escape(shown.checkpoint_title)}</h2>",
        f"<p>What counts: {html.escape(shown.rubric)}</p>",
        f"<p>The proof must show: <b>{html.escape(shown.proof_phrase)}</b></p>" if shown.proof_phrase else "",
        f"<p>Proof ({html.escape(shown.proof.source)}), as captured when it was submitted:</p>",
        f"<pre>{html.escape(shown.proof.text)}</pre>" if shown.proof.text else "",
        *(f"<img alt='the proof' src='{html.escape(image, quote=True)}'>" for image in shown.proof.images),
    ]
    return "".join(parts)


def register(app: flask.Flask) -> None:
    @app.get("/app/witness")
    def witness() -> flask.Response:
        token = flask.request.args.get("token", "")
        verdict = _unverified_claim(token, "verdict")
        if verdict not in ("pass", "fail"):
            return _page("Witness link", "<p>This link is not a witness link, or it was cut short.</p>")
        words = "passes" if verdict == "pass" else "does not pass"
        return _page(
            "Your verdict as a witness",
            f"<p>You were asked whether a friend's proof meets their goal. This link says it <b>{words}</b>.</p>"
            + _witness_proof_html(token)
            + "<p><label>A comment for them (optional)<textarea id='comment' maxlength='1000'></textarea></label></p>"
            + _button(
                f"Send: it {words}",
                "/grade_submission",
                {"action": "witness_verdict", "token": token, "verdict": verdict},
            ),
        )

    @app.get("/app/x/authorize")
    def x_authorize() -> flask.Response:
        args = flask.request.args
        settings = get_settings()
        redirect_uri = args.get("redirect_uri", "")
        problems = [
            name
            for name, ok in (
                ("response_type", args.get("response_type") == "code"),
                ("redirect_uri", bool(settings.x_redirect_uri) and redirect_uri == settings.x_redirect_uri),
                ("code_challenge_method", args.get("code_challenge_method") == "S256"),
                ("code_challenge", 43 <= len(args.get("code_challenge", "")) <= 128),
                ("state", bool(args.get("state"))),
            )
            if not ok
        ]
        if problems:
            # X shows an error page, and never redirects to an unregistered redirect_uri.
            return _page("X: something went wrong", f"<p>Invalid request: {html.escape(', '.join(problems))}.</p>")
        from shared.providers import x_api

        state = args["state"]
        allow = _with_query(
            redirect_uri, {"state": state, "code": x_api.dry_authorization_code(args["code_challenge"])}
        )
        deny = _with_query(redirect_uri, {"state": state, "error": "access_denied"})
        scopes = ", ".join(html.escape(s) for s in args.get("scope", "").split())
        return _page(
            "X (development stand-in): authorize Threativator",
            f"<p>Threativator wants to access your X account: {scopes}.</p>"
            f"<p><a id='allow' href='{html.escape(allow, quote=True)}'><button>Allow</button></a>"
            f"<a id='cancel' href='{html.escape(deny, quote=True)}'><button>Cancel</button></a></p>",
        )

    @app.get("/app/x/callback")
    def x_callback() -> flask.Response:
        args = flask.request.args
        if args.get("error"):
            return _page("Connecting X", "<p>You did not allow Threativator to use X; nothing was connected.</p>")
        code, state = args.get("code", ""), args.get("state", "")
        jwt_value = flask.current_app.config.get("DEV_JWT", "")
        return _page(
            "Connecting X",
            "<p>X sent you back. The frontend now completes the connection with your session.</p>"
            "<p><label>Your session's JWT (the development JWT is filled in)"
            f"<input id='jwt' value='{html.escape(jwt_value, quote=True)}'></label></p>"
            + _button("Complete the connection", "/connect_x", {"action": "callback", "code": code, "state": state}),
        )

    for path, rpc, label in (
        ("/app/contacts/confirm", "confirm_contact", "Yes, I agree to be a contact"),
        ("/app/contacts/decline", "decline_contact", "No, never contact me again"),
        ("/app/unsubscribe", "unsubscribe_reminders", "Stop the reminders"),
    ):
        app.add_url_rule(path, f"page_{rpc}", _token_page(rpc, label), methods=["GET"])

    @app.post("/app/rpc/<name>")
    def anon_rpc(name: str) -> flask.Response:
        """PostgREST's rpc/<name> for the three functions anon may call, as role anon."""
        import psycopg

        body = flask.request.get_json(silent=True) or {}
        token = body.get("token")
        if name not in ANON_RPCS or not isinstance(token, str):
            return flask.make_response(flask.jsonify({"error": {"code": "not_found", "message": "no such call"}}), 404)
        try:
            with db.as_role("anon", {"role": "anon"}) as conn:
                row = conn.execute(f"select public.{name}(%s) as result", [token]).fetchone()
        except psycopg.Error as error:
            message = error.diag.message_primary or "refused"
            return flask.make_response(flask.jsonify({"error": {"code": "refused", "message": message}}), 400)
        return flask.jsonify({"result": row["result"] if row else None})

    @app.route("/storage/v1/object/<bucket>/<path:key>", methods=["GET", "POST", "PUT", "OPTIONS"])
    def storage_object(bucket: str, key: str) -> flask.Response:
        return _storage(bucket, key)


def _with_query(url: str, params: dict[str, str]) -> str:
    joiner = "&" if urllib.parse.urlsplit(url).query else "?"
    return url + joiner + urllib.parse.urlencode(params)


def _token_page(rpc: str, label: str) -> Any:
    def page() -> flask.Response:
        token = flask.request.args.get("token", "")
        return _page("Threativator", _button(label, f"/app/rpc/{rpc}", {"token": token}))

    return page


# Supabase Storage's global upload limit (a project setting; 50 MB on the free plan).
STORAGE_GLOBAL_LIMIT = 50 * 1024 * 1024


def _storage_error(status: int, error: str, message: str) -> flask.Response:
    """Storage's error shape: the status goes in the body; the answer is HTTP 400 for every error it
    renders and 500 for its own faults (supabase/storage, src/http/error-handler.ts)."""
    body = {"statusCode": str(status), "error": error, "message": message}
    return flask.make_response(flask.jsonify(body), 500 if status >= 500 else 400)


INSERT_OBJECT = "insert into storage.objects (bucket_id, name, owner, owner_id, metadata) values (%s, %s, %s, %s, %s)"
UPSERT_OBJECT = " on conflict (bucket_id, name) do update set metadata = excluded.metadata, updated_at = now()"


class _PermissionTested(Exception):
    """Rolls back the trial insert that tests a caller's right to write."""


def _mime_allowed(mime: str, allowed: list[str] | None) -> bool:
    """A bucket's allowed_mime_types, as Storage matches them: exact, or `type/*`."""
    if not allowed:
        return True
    kind = mime.split("/", 1)[0]
    return any(a == mime or (a.endswith("/*") and a[:-2] == kind) for a in allowed)


def _storage(bucket: str, key: str) -> flask.Response:
    """Storage's object API over DEV_STORAGE_DIR, with the proofs bucket's policy: a user reads and
    writes only under their own <user id>/ folder; the service anything."""
    from shared.http import cors_headers

    cors = cors_headers(flask.request, ["GET", "POST", "PUT"])
    response = flask.Response(status=204) if flask.request.method == "OPTIONS" else _storage_call(bucket, key)
    for name, value in cors.items():
        response.headers[name] = value
    return response


def _storage_call(bucket: str, key: str) -> flask.Response:
    """As Supabase's Storage server: the bucket's own limits from storage.buckets, and the object row
    written and read as the caller's database role, so the bucket's RLS policies decide."""
    import psycopg

    from shared.auth import identify
    from shared.errors import ApiError
    from shared.providers import storage
    from shared.providers.errors import ProviderRefused

    request = flask.request
    try:
        caller = identify(request.headers.get("Authorization"), request.headers.get("apikey"))
    except ApiError:
        return _storage_error(400, "InvalidJWT", "invalid JWT")
    with db.transaction() as conn:
        found = conn.execute(
            "select file_size_limit, allowed_mime_types from storage.buckets where id = %s", [bucket]
        ).fetchone()
    if found is None:
        return _storage_error(404, "Bucket not found", "Bucket not found")
    try:
        target = storage.local_object(bucket, key)
    except ProviderRefused:
        return _storage_error(400, "InvalidKey", f"Invalid key: {key}")
    role, claims = ("anon", {"role": "anon"}) if caller is None else (caller.role, dict(caller.claims))
    if request.method == "GET":
        with db.as_role(role, claims) as conn:
            visible = conn.execute(
                "select 1 from storage.objects where bucket_id = %s and name = %s", [bucket, key]
            ).fetchone()
        if visible is None or not target.is_file():
            return _storage_error(404, "not_found", "Object not found")
        return flask.Response(target.read_bytes(), mimetype="application/octet-stream")
    limit = min(found["file_size_limit"] or STORAGE_GLOBAL_LIMIT, STORAGE_GLOBAL_LIMIT)
    if (request.content_length or 0) > limit:
        return _storage_error(413, "Payload too large", "The object exceeded the maximum allowed size")
    upsert = request.headers.get("x-upsert", "false").lower() == "true"
    owner = str(caller.user_id) if caller is not None and caller.user_id is not None else None

    insert = INSERT_OBJECT + (UPSERT_OBJECT if upsert else "")

    def write_row(metadata: str | None) -> None:
        with db.as_role(role, claims) as conn:
            conn.execute(insert, [bucket, key, owner, owner, metadata])
            if metadata is None:
                raise _PermissionTested

    # As Storage: the caller's right to write is tested first (the row inserted and rolled back),
    # then the object's type and size against the bucket, then the row written for good.
    try:
        with contextlib.suppress(_PermissionTested):
            write_row(None)
        uploaded = next(iter(request.files.values()), None)
        data = uploaded.read() if uploaded is not None else request.get_data()
        mime = (uploaded.mimetype if uploaded is not None else request.mimetype) or "application/octet-stream"
        if len(data) > limit:
            return _storage_error(413, "Payload too large", "The object exceeded the maximum allowed size")
        if not _mime_allowed(mime, found["allowed_mime_types"]):
            return _storage_error(415, "invalid_mime_type", f"mime type {mime} is not supported")
        digest = hashlib.md5(data).hexdigest()  # noqa: S324 - an S3 ETag, not a security check
        write_row(json.dumps({"size": len(data), "mimetype": mime, "eTag": digest}))
    except psycopg.errors.UniqueViolation:
        return _storage_error(409, "Duplicate", "The resource already exists")
    except psycopg.errors.InsufficientPrivilege:
        return _storage_error(403, "Unauthorized", "new row violates row-level security policy")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return flask.jsonify({"Id": secrets.token_hex(16), "Key": f"{bucket}/{key}"})
