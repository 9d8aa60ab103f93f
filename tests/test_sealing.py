"""The kompromat vault and upload_kompromat: encryption bound to its row, key
rotation, type sniffing, size caps, and no plaintext anywhere it could leak."""

from __future__ import annotations

import io
import subprocess
import uuid
from typing import Any
from uuid import UUID

import psycopg
import pytest

from shared.account import kompromat, sealing
from shared.auth import mint_token
from shared.config import get_settings
from shared.dev.localdb import POSTGRES_BIN
from tests import factories as f
from tests.http_helpers import bearer, client

Conn = psycopg.Connection[dict[str, Any]]
MARKER = b"PLAINTEXT-KOMPROMAT-MARKER-7f3a"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + MARKER * 40
PDF = b"%PDF-1.7\n" + MARKER * 10 + b"\n%%EOF"


@pytest.fixture
def alice(owner: Conn) -> UUID:
    return f.user(owner, "alice")


def _upload(
    user: UUID,
    content: bytes,
    filename: str = "photo.png",
    content_type: str = "image/png",
    severity: str = "major",
    **extra: str,
) -> Any:
    data: dict[str, Any] = {"severity": severity, **extra}
    if content is not None:
        data["file"] = (io.BytesIO(content), filename, content_type)
    return client("upload_kompromat").post(
        "/", data=data, content_type="multipart/form-data", headers=bearer(mint_token(str(user)))
    )


def test_vault_round_trip_and_row_binding() -> None:
    row, other_row, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    sealed = sealing.seal(b"embarrassing", purpose="kompromat", row_id=row, user_id=user)
    assert sealed.key_id == "k2"
    assert b"embarrassing" not in sealed.blob
    assert sealing.open_sealed(sealed, purpose="kompromat", row_id=row, user_id=user) == b"embarrassing"
    for kwargs in ({"row_id": other_row, "user_id": user}, {"row_id": row, "user_id": uuid.uuid4()}):
        with pytest.raises(sealing.SealingError):
            sealing.open_sealed(sealed, purpose="kompromat", **kwargs)
    with pytest.raises(sealing.SealingError):
        sealing.open_sealed(sealed, purpose="x_access_token", row_id=row, user_id=user)


def test_vault_fresh_nonce_per_item() -> None:
    row, user = uuid.uuid4(), uuid.uuid4()
    first = sealing.seal(b"same", purpose="kompromat", row_id=row, user_id=user)
    second = sealing.seal(b"same", purpose="kompromat", row_id=row, user_id=user)
    assert first.blob[: sealing.NONCE_BYTES] != second.blob[: sealing.NONCE_BYTES]


@pytest.mark.parametrize("position", [0, sealing.NONCE_BYTES, -1])
def test_vault_tampered_ciphertext_fails(position: int) -> None:
    row, user = uuid.uuid4(), uuid.uuid4()
    sealed = sealing.seal(b"content", purpose="kompromat", row_id=row, user_id=user)
    blob = bytearray(sealed.blob)
    blob[position] ^= 0x01
    with pytest.raises(sealing.SealingError):
        sealing.open_sealed(sealing.Sealed(sealed.key_id, bytes(blob)), purpose="kompromat", row_id=row, user_id=user)


def test_upload_stores_only_ciphertext_and_reveal_decrypts(alice: UUID, owner: Conn) -> None:
    response = _upload(alice, PNG, description="beach, 2009")
    assert response.status_code == 200, response.json
    view = response.json
    assert view["file_type"] == "image/png" and view["severity"] == "major"
    assert view["size_bytes"] == len(PNG) and view["description"] == "beach, 2009"
    assert "encrypted_content" not in view
    row = owner.execute("select encrypted_content, key_id from public.kompromat where id = %s", [view["id"]])
    stored = row.fetchone()
    # Sealed under alice's own data key, itself wrapped by the active master key.
    assert stored is not None and stored["key_id"] == sealing.USER_KEY
    wrapped = owner.execute("select key_id from public.user_data_keys where user_id = %s", [alice]).fetchone()
    assert wrapped == {"key_id": "k2"}
    assert MARKER not in bytes(stored["encrypted_content"])
    revealed = kompromat.reveal(UUID(view["id"]), reason="test")
    assert revealed.content == PNG
    assert MARKER.decode() not in repr(revealed)
    audit = owner.execute(
        "select action from public.audit_log where entity = 'kompromat' and entity_id = %s order by id",
        [view["id"]],
    ).fetchall()
    assert [a["action"] for a in audit] == ["uploaded", "decrypted"]


def test_ciphertext_moved_to_another_row_fails_to_decrypt(alice: UUID, owner: Conn) -> None:
    first = UUID(_upload(alice, PNG).json["id"])
    second = UUID(_upload(alice, PDF, "doc.pdf", "application/pdf", severity="minor").json["id"])
    owner.execute(
        "update public.kompromat set encrypted_content = (select encrypted_content from"
        " public.kompromat where id = %s) where id = %s",
        [first, second],
    )
    with pytest.raises(sealing.SealingError):
        kompromat.reveal(second, reason="test")
    assert kompromat.reveal(first, reason="test").content == PNG


def test_rotation_keeps_every_item_readable(
    alice: UUID, owner: Conn, monkeypatch: pytest.MonkeyPatch, repo_root: Any
) -> None:
    monkeypatch.setenv("KOMPROMAT_ACTIVE_KEY_ID", "k1")
    get_settings.cache_clear()
    from tests.test_engine import with_kompromat

    ids = [UUID(_upload(alice, PNG).json["id"]) for _ in range(2)]
    # Two items from before per-user keys, sealed straight under the old master key.
    ids += [with_kompromat(owner, alice, "minor", PNG) for _ in range(3)]
    monkeypatch.delenv("KOMPROMAT_ACTIVE_KEY_ID")
    get_settings.cache_clear()
    ids.append(UUID(_upload(alice, PDF, "d.pdf", "application/pdf").json["id"]))
    keys = owner.execute("select key_id from public.kompromat order by key_id").fetchall()
    assert [k["key_id"] for k in keys] == ["k1", "k1", "k1", "user", "user", "user"]
    assert owner.execute("select key_id from public.user_data_keys").fetchall() == [{"key_id": "k1"}]
    result = subprocess.run(
        [str(repo_root / ".venv/bin/threativator"), "rotate-keys", "--batch-size", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "3 kompromat" in result.stdout and "1 data keys" in result.stdout
    keys = owner.execute("select distinct key_id from public.kompromat").fetchall()
    assert keys == [{"key_id": "user"}]
    assert owner.execute("select key_id from public.user_data_keys").fetchall() == [{"key_id": "k2"}]
    assert [kompromat.reveal(i, reason="test").content for i in ids] == [PNG, PNG, PNG, PNG, PNG, PDF]


@pytest.mark.parametrize(
    ("content", "filename", "claimed"),
    [
        (b"MZ\x90\x00" + b"\x00" * 200, "photo.png", "image/png"),  # a Windows executable
        (b"PK\x03\x04" + b"\x00" * 200, "notes.txt", "text/plain"),  # a zip
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "cat.jpg", "image/jpeg"),  # an ELF binary
        (b"\xff\xfe\x00\x00binary\x00", "a.txt", "text/plain"),  # not text
    ],
)
def test_upload_refuses_disallowed_types_whatever_the_header_says(
    alice: UUID, owner: Conn, content: bytes, filename: str, claimed: str
) -> None:
    response = _upload(alice, content, filename, claimed)
    assert response.status_code == 415
    assert owner.execute("select count(*) as n from public.kompromat").fetchone() == {"n": 0}


def test_upload_sniffs_text_and_ignores_a_lying_header(alice: UUID) -> None:
    response = _upload(alice, b"# My diary\nDear diary...", "diary.md", "image/png")
    assert response.status_code == 200
    assert response.json["file_type"] == "text/markdown"


def test_upload_over_the_cap_is_413(alice: UUID, owner: Conn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOMPROMAT_MAX_BYTES", "1000")
    get_settings.cache_clear()
    small = _upload(alice, PNG[:900])
    assert small.status_code == 200
    big = _upload(alice, PNG[:1001])
    assert big.status_code == 413
    huge = _upload(alice, PNG * 200)
    assert huge.status_code == 413
    assert owner.execute("select count(*) as n from public.kompromat").fetchone() == {"n": 1}


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"severity": "catastrophic"}, "severity"),
        ({"severity": "major", "description": "x" * 501}, "description"),
    ],
)
def test_upload_bad_fields_are_400(alice: UUID, fields: dict[str, str], missing: str) -> None:
    response = _upload(alice, PNG, **{k: v for k, v in fields.items() if k != "severity"}, severity=fields["severity"])
    assert response.status_code == 400
    assert response.json["error"]["details"][0]["field"] == missing


def test_upload_without_file_or_as_json_is_refused(alice: UUID) -> None:
    response = client("upload_kompromat").post(
        "/",
        data={"severity": "major"},
        content_type="multipart/form-data",
        headers=bearer(mint_token(str(alice))),
    )
    assert response.status_code == 400
    response = client("upload_kompromat").post("/", json={"file": "x"}, headers=bearer(mint_token(str(alice))))
    assert response.status_code == 415


def test_no_plaintext_in_database_dump_or_logs(alice: UUID, database: str, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):
        assert _upload(alice, PNG).status_code == 200
    dump = subprocess.run(
        [str(POSTGRES_BIN / "pg_dump"), "--data-only", database], capture_output=True, check=True
    ).stdout
    assert len(dump) > 1000
    assert MARKER not in dump
    assert MARKER.hex().encode() not in dump
    out = capsys.readouterr()
    assert MARKER.decode() not in out.out + out.err


def test_upload_malformed_multipart_is_400(alice: UUID, owner: Conn) -> None:
    response = client("upload_kompromat").post(
        "/",
        data=b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nnot closed',
        content_type="multipart/form-data; boundary=b",
        headers=bearer(mint_token(str(alice))),
    )
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_body"
    assert owner.execute("select count(*) as n from public.kompromat").fetchone() == {"n": 0}
