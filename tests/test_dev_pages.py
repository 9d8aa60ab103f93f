"""make dev's local pages (issue 21) refuse what their real counterparts refuse: X's consent screen
never sends a code to an unregistered redirect URI, Storage's policy keeps each user in their own
folder, nothing a link carries is rendered as markup, and none of it exists in production."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from shared.auth import mint_token
from shared.config import get_settings
from shared.dev import devserver
from tests.http_helpers import bearer

CALLBACK = "http://127.0.0.1:8080/app/x/callback"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database: str) -> Any:
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("X_REDIRECT_URI", CALLBACK)
    monkeypatch.setenv("DEV_STORAGE_DIR", str(tmp_path / "storage"))
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    return devserver.build_app(dev_jwt="dev-jwt-for-the-page")


def _get(app: Any, path: str, **kwargs: Any) -> Any:
    from werkzeug.test import Client

    return Client(app).get(path, **kwargs)


def _authorize(redirect_uri: str, **extra: str) -> str:
    from urllib.parse import urlencode

    query = {
        "response_type": "code",
        "client_id": "threativator-dry-client",
        "redirect_uri": redirect_uri,
        "scope": "tweet.write",
        "state": "s" * 32,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        **extra,
    }
    return "/app/x/authorize?" + urlencode(query)


def test_the_consent_page_sends_a_code_only_to_the_registered_redirect_uri(pages: Any) -> None:
    good = _get(pages, _authorize(CALLBACK)).get_data(as_text=True)
    assert f"href='{CALLBACK}?state={'s' * 32}&amp;code=dry-{CHALLENGE}'" in good
    assert f"href='{CALLBACK}?state={'s' * 32}&amp;error=access_denied'" in good
    for bad in (_authorize("https://evil.example/steal"), _authorize(CALLBACK, code_challenge_method="plain")):
        page = _get(pages, bad).get_data(as_text=True)
        assert "Invalid request" in page and "evil.example" not in page and "code=dry-" not in page


def test_nothing_a_link_carries_is_rendered_as_markup(pages: Any) -> None:
    hostile = "<script>alert(1)</script>"
    witness = _get(pages, "/app/witness", query_string={"token": hostile}).get_data(as_text=True)
    assert hostile not in witness and "not a witness link" in witness
    callback = _get(pages, "/app/x/callback", query_string={"code": hostile, "state": "'><img src=x>"})
    text = callback.get_data(as_text=True)
    assert hostile not in text and "'><img" not in text
    assert "&lt;script&gt;" in text  # escaped inside the button's data-body
    assert callback.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert callback.headers["Referrer-Policy"] == "no-referrer"


def storage_error(response: Any) -> tuple[int, str]:
    """Storage answers its errors with HTTP 400 and the status in the body."""
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    return int(body["statusCode"]), body["message"]


def test_the_storage_stand_in_answers_as_supabase_storage_does(pages: Any) -> None:
    from werkzeug.test import Client

    http = Client(pages)
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    as_alice = bearer(mint_token(alice))
    png = {**as_alice, "Content-Type": "image/png"}
    assert http.post(f"/storage/v1/object/proofs/{alice}/a.png", data=b"one", headers=png).status_code == 200
    assert http.get(f"/storage/v1/object/proofs/{alice}/a.png", headers=as_alice).get_data() == b"one"
    # Already there: refused, and x-upsert needs an UPDATE policy the bucket does not give users.
    assert storage_error(http.post(f"/storage/v1/object/proofs/{alice}/a.png", data=b"two", headers=png)) == (
        409,
        "The resource already exists",
    )
    upsert = {**png, "x-upsert": "true"}
    assert storage_error(http.post(f"/storage/v1/object/proofs/{alice}/a.png", data=b"two", headers=upsert))[0] == 403
    # Another user's folder, no credential: refused by the bucket's policies, in Storage's words.
    refused = storage_error(http.post(f"/storage/v1/object/proofs/{bob}/b.png", data=b"x", headers=png))
    assert refused == (403, "new row violates row-level security policy")
    assert (
        storage_error(http.get(f"/storage/v1/object/proofs/{alice}/a.png", headers=bearer(mint_token(bob))))[0] == 404
    )
    assert storage_error(http.get(f"/storage/v1/object/proofs/{alice}/a.png"))[0] == 404
    anonymous = http.post(f"/storage/v1/object/proofs/{alice}/c.png", data=b"x", headers={"Content-Type": "image/png"})
    assert storage_error(anonymous)[0] == 403
    assert storage_error(http.post(f"/storage/v1/object/other/{alice}/a.png", data=b"x", headers=png)) == (
        404,
        "Bucket not found",
    )
    escape = http.post(f"/storage/v1/object/proofs/{alice}/../../../etc/x", data=b"x", headers=png)
    assert escape.status_code in (400, 404)
    # The grader reads what was uploaded, through the provider's dry mode.
    from shared.providers import storage

    assert storage.download(f"{alice}/a.png") == b"one"


def test_the_bucket_s_own_limits_refuse_an_oversized_upload_and_a_wrong_type(pages: Any, owner: Any) -> None:
    """The limit and the types are the bucket's (storage.buckets), as Storage reads them: not a check
    of our own in the stand-in. Raising the bucket's limit lets the same upload through."""
    from werkzeug.test import Client

    http = Client(pages)
    alice = str(uuid.uuid4())
    as_alice = bearer(mint_token(alice))
    over = b"x" * int(11.5 * 1024 * 1024)
    big = http.post(
        f"/storage/v1/object/proofs/{alice}/big.png", data=over, headers={**as_alice, "Content-Type": "image/png"}
    )
    assert storage_error(big) == (413, "The object exceeded the maximum allowed size")
    exe = http.post(
        f"/storage/v1/object/proofs/{alice}/tool.exe",
        data=b"MZ",
        headers={**as_alice, "Content-Type": "application/x-msdownload"},
    )
    assert storage_error(exe) == (415, "mime type application/x-msdownload is not supported")
    untyped = http.post(f"/storage/v1/object/proofs/{alice}/blob", data=b"x", headers=as_alice)
    assert storage_error(untyped)[0] == 415
    # Text and code files are welcome (text/*), as are the grader's document types.
    for name, mime in (("notes.md", "text/markdown"), ("main.py", "text/x-python"), ("data.json", "application/json")):
        ok = http.post(
            f"/storage/v1/object/proofs/{alice}/{name}", data=b"{}", headers={**as_alice, "Content-Type": mime}
        )
        assert ok.status_code == 200, name
    limit = owner.execute("select file_size_limit from storage.buckets where id = 'proofs'").fetchone()
    assert limit == {"file_size_limit": get_settings().grading_max_proof_bytes}
    try:
        owner.execute("update storage.buckets set file_size_limit = 20 * 1024 * 1024 where id = 'proofs'")
        again = http.post(
            f"/storage/v1/object/proofs/{alice}/big.png", data=over, headers={**as_alice, "Content-Type": "image/png"}
        )
        assert again.status_code == 200
    finally:
        owner.execute("update storage.buckets set file_size_limit = %s where id = 'proofs'", [limit["file_size_limit"]])


def test_the_local_pages_do_not_exist_in_production(monkeypatch: pytest.MonkeyPatch, database: str) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "x" * 40)
    app = devserver.build_app()
    for path in ("/app/witness?token=x", _authorize(CALLBACK), "/app/unsubscribe?token=x"):
        assert _get(app, path).status_code == 404
