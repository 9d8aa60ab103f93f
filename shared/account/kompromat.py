"""Kompromat intake and the one place it is ever decrypted.

Uploads are parsed in memory (never spooled to disk), typed by their bytes
rather than the client's header, encrypted with the vault bound to their row,
and stored as ciphertext. `reveal` decrypts for the consequence engine and
writes each decryption to the audit log.
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Literal
from uuid import UUID

import flask
from pydantic import BaseModel

from shared import db
from shared.account import sealing
from shared.config import Settings, get_settings
from shared.errors import ApiError, bad_request, refuse_control_characters
from shared.log import get_logger

_logger = get_logger("threativator.kompromat")
PURPOSE = "kompromat"

# What the bytes must be (images, short video, PDF and text documents), and the extension
# the stored name gets from them: never the one the user typed.
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/heic": "heic",
    "image/avif": "avif",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-m4v": "m4v",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/plain": "txt",
    "text/markdown": "md",
}
ALLOWED_TYPES = frozenset(EXTENSIONS)
# Room for the multipart framing around the file itself.
_MULTIPART_OVERHEAD = 64 * 1024


def max_request_bytes(settings: Settings) -> int:
    """The whole request's cap: the file cap plus the multipart framing."""
    return settings.kompromat_max_bytes + _MULTIPART_OVERHEAD


class KompromatView(BaseModel):
    id: UUID
    severity: Literal["minor", "major"]
    file_type: str
    original_filename: str
    size_bytes: int
    description: str | None
    created_at: datetime


def sniff(data: bytes, filename: str) -> str | None:
    """The MIME type the bytes really are, or None when not allowed."""
    import filetype

    kind = filetype.guess(data)
    if kind is not None:
        return kind.mime if kind.mime in ALLOWED_TYPES else None
    if b"\x00" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/markdown" if filename.lower().endswith((".md", ".markdown")) else "text/plain"


def _in_memory(
    total_content_length: int | None,
    content_type: str | None,
    filename: str | None,
    content_length: int | None = None,
) -> IO[bytes]:
    return io.BytesIO()


def _clean_filename(name: str | None, mime: str) -> str:
    """A safe name for an attachment: letters, digits, spaces, '-' and '_' from the user's stem,
    and the extension of what the bytes really are ('invoice.pdf.exe' holding a PNG is 'invoice pdf.png')."""
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    stem = base.rsplit(".", 1)[0] if "." in base else base
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else " " for ch in stem)
    stem = " ".join(cleaned.split())[:100] or "kompromat"
    return f"{stem}.{EXTENSIONS[mime]}"


def upload(user_id: UUID, request: flask.Request) -> KompromatView:
    """Store one multipart upload (`file`, `severity`, optional `description`)."""
    from werkzeug.formparser import FormDataParser

    cap = get_settings().kompromat_max_bytes
    if request.content_length is not None and request.content_length > cap + _MULTIPART_OVERHEAD:
        raise ApiError(413, "payload_too_large", f"kompromat files are limited to {cap} bytes")
    # Parsed from the request's own stream with an in-memory file factory: werkzeug
    # would otherwise spool files over 500 KB to a temporary file on disk.
    parser = FormDataParser(stream_factory=_in_memory, max_content_length=cap + _MULTIPART_OVERHEAD, silent=False)
    try:
        body = request.get_data(cache=True)  # read (bounded) by the endpoint before anything ran
        _, form, files = parser.parse(io.BytesIO(body), request.mimetype, len(body), request.mimetype_params)
    except ValueError:
        raise bad_request("the multipart body is malformed", code="invalid_body") from None
    severity = form.get("severity")
    if severity not in ("minor", "major"):
        raise bad_request(
            "severity must be 'minor' or 'major'",
            [{"field": "severity", "message": "must be minor or major", "type": "enum"}],
            code="invalid_body",
        )
    description = form.get("description") or None
    if description is not None:
        refuse_control_characters(description, "description")
    if description is not None and len(description) > 500:
        raise bad_request(
            "description is longer than 500 characters",
            [{"field": "description", "message": "too long", "type": "string_too_long"}],
            code="invalid_body",
        )
    upload_file = files.get("file")
    if upload_file is None:
        raise bad_request(
            "a file is required",
            [{"field": "file", "message": "missing", "type": "missing"}],
            code="invalid_body",
        )
    data = upload_file.stream.read(cap + 1)
    if len(data) > cap:
        raise ApiError(413, "payload_too_large", f"kompromat files are limited to {cap} bytes")
    if not data:
        raise bad_request("the file is empty", code="invalid_body")
    mime = sniff(data, upload_file.filename or "")
    if mime is None:
        raise ApiError(415, "unsupported_media_type", "only images, short videos, PDFs and text documents are accepted")
    filename = _clean_filename(upload_file.filename, mime)

    kompromat_id = uuid.uuid4()
    size = len(data)
    sealed = sealing.seal_for_user(data, purpose=PURPOSE, row_id=kompromat_id, user_id=user_id)
    del data
    with db.as_service() as conn:
        row = conn.execute(
            "insert into public.kompromat (id, user_id, original_filename, file_type, severity, description,"
            " encrypted_content, key_id, size_bytes) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " returning id, severity::text, file_type, original_filename, size_bytes, description, created_at",
            [kompromat_id, user_id, filename, mime, severity, description, sealed.blob, sealed.key_id, size],
        ).fetchone()
        conn.execute(
            "select app.audit('kompromat', %s, 'uploaded', %s, jsonb_build_object('severity', %s::text,"
            " 'file_type', %s::text))",
            [kompromat_id, user_id, severity, mime],
        )
    assert row is not None
    _logger.info("kompromat stored", extra={"fields": {"user_id": str(user_id), "kompromat_id": str(kompromat_id)}})
    return KompromatView(**row)


@dataclass(frozen=True)
class Revealed:
    kompromat_id: UUID
    filename: str
    file_type: str
    content: bytes

    def __repr__(self) -> str:  # never print the content
        return f"Revealed(kompromat_id={self.kompromat_id}, file_type={self.file_type!r})"


def reveal(kompromat_id: UUID, *, reason: str, consequence_id: UUID | None = None) -> Revealed:
    """Decrypt one item for a consequence. The decryption is audited before the bytes are returned."""
    with db.as_service() as conn:
        row = conn.execute(
            "select user_id, original_filename, file_type, encrypted_content, key_id from public.kompromat"
            " where id = %s",
            [kompromat_id],
        ).fetchone()
        if row is None or row["encrypted_content"] is None:
            raise sealing.SealingError("no stored ciphertext for this kompromat")
        content = sealing.open_sealed(
            sealing.Sealed(row["key_id"], bytes(row["encrypted_content"])),
            purpose=PURPOSE,
            row_id=kompromat_id,
            user_id=row["user_id"],
            conn=conn,
        )
        conn.execute(
            "select app.audit('kompromat', %s, 'decrypted', %s, jsonb_build_object('reason', %s::text,"
            " 'consequence_id', %s::text))",
            [kompromat_id, row["user_id"], reason, consequence_id],
        )
    return Revealed(kompromat_id, row["original_filename"], row["file_type"], content)


def rotate_keys(active: str, batch_size: int = 100) -> dict[str, int]:
    """Move every kompromat item sealed under a master key to its owner's data key, in batches,
    then re-wrap every data key not under the active master key."""
    count = 0
    while True:
        with db.transaction() as conn:
            rows = conn.execute(
                "select id, user_id, encrypted_content, key_id from public.kompromat"
                " where encrypted_content is not null and key_id <> %s limit %s for update skip locked",
                [sealing.USER_KEY, batch_size],
            ).fetchall()
            for row in rows:
                plain = sealing.open_sealed(
                    sealing.Sealed(row["key_id"], bytes(row["encrypted_content"])),
                    purpose=PURPOSE,
                    row_id=row["id"],
                    user_id=row["user_id"],
                )
                sealed = sealing.seal_for_user(
                    plain, purpose=PURPOSE, row_id=row["id"], user_id=row["user_id"], conn=conn
                )
                conn.execute(
                    "update public.kompromat set encrypted_content = %s, key_id = %s where id = %s",
                    [sealed.blob, sealed.key_id, row["id"]],
                )
            count += len(rows)
        if len(rows) < batch_size:
            break
    with db.transaction() as conn:
        rewrapped = sealing.rewrap_data_keys(active, conn)
    return {"kompromat": count, "data keys": rewrapped}
