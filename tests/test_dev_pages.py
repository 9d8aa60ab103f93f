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


def test_the_storage_stand_in_keeps_each_user_in_their_own_folder(pages: Any) -> None:
    from werkzeug.test import Client

    http = Client(pages)
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    as_alice = bearer(mint_token(alice))
    assert http.post(f"/storage/v1/object/proofs/{alice}/a.png", data=b"one", headers=as_alice).status_code == 200
    assert http.get(f"/storage/v1/object/proofs/{alice}/a.png", headers=as_alice).get_data() == b"one"
    # Already there: refused unless x-upsert, as Storage does.
    assert http.post(f"/storage/v1/object/proofs/{alice}/a.png", data=b"two", headers=as_alice).status_code == 409
    upsert = {**as_alice, "x-upsert": "true"}
    assert http.post(f"/storage/v1/object/proofs/{alice}/a.png", data=b"two", headers=upsert).status_code == 200
    # Another user's folder, no credential, or a path out of the folder: refused.
    assert http.get(f"/storage/v1/object/proofs/{alice}/a.png", headers=bearer(mint_token(bob))).status_code == 403
    assert http.post(f"/storage/v1/object/proofs/{bob}/b.png", data=b"x", headers=as_alice).status_code == 403
    assert http.get(f"/storage/v1/object/proofs/{alice}/a.png").status_code == 403
    assert http.post(f"/storage/v1/object/other/{alice}/a.png", data=b"x", headers=as_alice).status_code == 404
    too_big = b"x" * (get_settings().grading_max_proof_bytes + 1)
    assert http.post(f"/storage/v1/object/proofs/{alice}/big.png", data=too_big, headers=as_alice).status_code == 413
    escape = http.post(f"/storage/v1/object/proofs/{alice}/../../../etc/x", data=b"x", headers=as_alice)
    assert escape.status_code in (400, 403, 404)
    # The grader reads what was uploaded, through the provider's dry mode.
    from shared.providers import storage

    assert storage.download(f"{alice}/a.png") == b"two"


def test_the_local_pages_do_not_exist_in_production(monkeypatch: pytest.MonkeyPatch, database: str) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "x" * 40)
    app = devserver.build_app()
    for path in ("/app/witness?token=x", _authorize(CALLBACK), "/app/unsubscribe?token=x"):
        assert _get(app, path).status_code == 404
