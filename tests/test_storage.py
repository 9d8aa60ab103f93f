"""The proofs bucket as `threativator buckets` creates it on Supabase: its limits are the bucket's own
(Storage enforces them before any of our code runs) and its policies keep each user in their folder,
checked as the roles Storage inserts and reads with. The schema is Storage's own (sql/local/004_storage.sql)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from shared.config import get_settings
from shared.dev.cli import buckets_sql
from shared.proof.capture import UPLOAD_MIME_TYPES

Conn = psycopg.Connection[Any]


@pytest.fixture
def rolled_back(owner: Conn) -> Iterator[Conn]:
    with owner.transaction(force_rollback=True):
        yield owner


def as_role(conn: Conn, role: str, user: str | None = None) -> None:
    claims = {"role": role, **({"sub": user} if user else {})}
    conn.execute(
        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
        [role, json.dumps(claims)],
    )


def insert_object(conn: Conn, name: str) -> None:
    conn.execute("insert into storage.objects (bucket_id, name) values ('proofs', %s)", [name])


def test_the_bucket_carries_the_grader_s_limits(rolled_back: Conn) -> None:
    rolled_back.execute(buckets_sql())  # applied twice (deploy re-runs it): the same one bucket
    bucket = rolled_back.execute("select * from storage.buckets where id = 'proofs'").fetchone()
    assert bucket is not None and bucket["public"] is False
    assert bucket["file_size_limit"] == get_settings().grading_max_proof_bytes == 10 * 1024 * 1024
    assert bucket["allowed_mime_types"] == list(UPLOAD_MIME_TYPES)
    assert {"image/jpeg", "image/png", "application/pdf", "text/*"} <= set(bucket["allowed_mime_types"])
    assert not any(t.startswith(("video/", "audio/", "application/x-msdownload")) for t in bucket["allowed_mime_types"])


def test_a_user_writes_and_reads_only_their_own_folder(rolled_back: Conn) -> None:
    alice, bob = str(uuid4()), str(uuid4())
    with rolled_back.transaction():
        as_role(rolled_back, "authenticated", alice)
        insert_object(rolled_back, f"{alice}/drafts/a.png")
    for name in (f"{bob}/a.png", "a.png", f"x/{alice}/a.png"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), rolled_back.transaction():
            as_role(rolled_back, "authenticated", alice)
            insert_object(rolled_back, name)
    with rolled_back.transaction():
        as_role(rolled_back, "authenticated", bob)
        assert rolled_back.execute("select name from storage.objects").fetchall() == []
        as_role(rolled_back, "authenticated", alice)
        assert rolled_back.execute("select name from storage.objects").fetchall() == [{"name": f"{alice}/drafts/a.png"}]


def test_anon_can_neither_upload_nor_read(rolled_back: Conn) -> None:
    alice = str(uuid4())
    insert_object(rolled_back, f"{alice}/a.png")  # as the service would
    with pytest.raises(psycopg.errors.InsufficientPrivilege), rolled_back.transaction():
        as_role(rolled_back, "anon")
        insert_object(rolled_back, f"{alice}/b.png")
    with rolled_back.transaction():
        as_role(rolled_back, "anon")
        assert rolled_back.execute("select count(*) as n from storage.objects").fetchone() == {"n": 0}


def test_a_user_cannot_overwrite_or_delete_a_stored_proof(rolled_back: Conn) -> None:
    """No update or delete policy: a proof, once stored, is changed only by the service (erasure)."""
    alice = str(uuid4())
    insert_object(rolled_back, f"{alice}/a.png")
    with rolled_back.transaction():
        as_role(rolled_back, "authenticated", alice)
        changed = rolled_back.execute("update storage.objects set metadata = null where name = %s", [f"{alice}/a.png"])
        deleted = rolled_back.execute("delete from storage.objects where name = %s", [f"{alice}/a.png"])
        assert changed.rowcount == 0 and deleted.rowcount == 0
