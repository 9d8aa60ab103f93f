"""Erasure reaches backups. A backup taken before an erasure holds the erased user's wrapped data key:
it opens their kompromat while the master key that wraps it lives. The scheduler re-wraps every data
key under the active master key and retires the key it replaced; once BACKUP_RETENTION_DAYS have
passed it must be destroyed, and then no backup copy opens. An erasure log of tombstone ids, kept
outside the database, lets a restore erase the account again."""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row

from shared import config, db
from shared.account import keys, leaving, sealing
from shared.dev.cli import main as cli_main
from shared.dev.localdb import POSTGRES_BIN
from tests import factories as f
from tests.test_engine import with_kompromat

Conn = psycopg.Connection[dict[str, Any]]
K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()
SECRET = b"MARKER-BACKUP-KOMPROMAT"


def use_keys(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """The operator changes KOMPROMAT_KEYS (the newest listed is the active one)."""
    monkeypatch.setenv("KOMPROMAT_KEYS", value)
    config.get_settings.cache_clear()


def backup_copy(owner: Conn, user: UUID) -> dict[str, Any]:
    """What a backup taken now holds of the user's kompromat: the wrapped data key and the ciphertext."""
    wrapped = owner.execute("select key_id, wrapped from public.user_data_keys where user_id = %s", [user]).fetchone()
    item = owner.execute("select id, encrypted_content from public.kompromat where user_id = %s", [user]).fetchone()
    assert wrapped is not None and item is not None
    return {"user": user, "key_id": wrapped["key_id"], "wrapped": bytes(wrapped["wrapped"]), **item}


def open_backup(copy: dict[str, Any], master_keys: dict[str, str]) -> bytes:
    """An attacker with the backup and whatever master keys still exist."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    master = base64.b64decode(master_keys[copy["key_id"]])  # KeyError: that key was destroyed
    blob, item = copy["wrapped"], bytes(copy["encrypted_content"])
    data_key = AESGCM(master).decrypt(blob[:12], blob[12:], sealing._wrap_aad(copy["user"]))
    return AESGCM(data_key).decrypt(item[:12], item[12:], sealing._aad("kompromat", copy["id"], copy["user"]))


def test_a_backup_of_erased_kompromat_stops_opening_once_its_master_key_is_rotated_out_and_destroyed(
    owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys(monkeypatch, f"k1:{K1}")
    leaver, stayer = f.user(owner, "leaver"), f.user(owner, "stayer")
    with_kompromat(owner, leaver, "minor", SECRET)
    with_kompromat(owner, stayer, "minor", b"the stayer's")
    first = keys.run()  # items move to per-user data keys, wrapped under k1
    assert first["active"] == "k1" and first["destroy_now"] == []
    copy = backup_copy(owner, leaver)  # the nightly backup
    owner.execute("select app.erase_user(%s)", [leaver])
    assert open_backup(copy, {"k1": K1}) == SECRET  # the backup still opens while k1 lives

    use_keys(monkeypatch, f"k1:{K1},k2:{K2}")  # rotation: k2 becomes the active key
    rotated = keys.run()
    assert rotated["active"] == "k2" and rotated["rewrapped"] >= 1 and rotated["destroy_now"] == []
    assert owner.execute("select key_id from public.user_data_keys where user_id = %s", [stayer]).fetchone() == {
        "key_id": "k2"
    }
    retired = owner.execute(
        "select retired_at, destroy_after - retired_at as kept from public.master_keys where key_id = 'k1'"
    )
    row = retired.fetchone()
    assert row is not None and row["kept"].days == config.get_settings().backup_retention_days == 30
    assert keys.run()["destroy_now"] == []  # not before every backup made under it has expired

    owner.execute("update public.master_keys set destroy_after = now() - interval '1 second' where key_id = 'k1'")
    assert keys.run()["destroy_now"] == ["k1"]  # reported, loudly, every pass until it is gone

    use_keys(monkeypatch, f"k2:{K2}")  # the operator destroys k1
    assert keys.run()["destroy_now"] == []
    with pytest.raises(KeyError):
        open_backup(copy, {"k2": K2})  # the backup copy of the erased user's kompromat: unopenable
    from cryptography.exceptions import InvalidTag

    with pytest.raises(InvalidTag):
        open_backup({**copy, "key_id": "k2"}, {"k2": K2})
    # Nobody else lost anything: the stayer's kompromat opens under k2.
    from shared.account import kompromat

    [item] = owner.execute("select id from public.kompromat where user_id = %s", [stayer]).fetchall()
    assert kompromat.reveal(item["id"], reason="test").content == b"the stayer's"


def test_a_master_key_older_than_the_rotation_period_is_reported_due(
    owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys(monkeypatch, f"k1:{K1}")
    assert keys.run()["rotation_due"] is False
    owner.execute("update public.master_keys set active_since = now() - interval '91 days' where key_id = 'k1'")
    report = keys.run()
    assert report["rotation_due"] is True
    assert config.get_settings().kompromat_key_rotation_days == 90


def test_a_restore_from_a_backup_made_before_an_erasure_erases_the_account_again(
    owner: Conn, database: str, pg_admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEV_STORAGE_DIR", str(tmp_path / "storage"))
    config.get_settings.cache_clear()
    user = f.user(owner, "restored")
    owner.execute("update auth.users set email = 'restored.marker@example.com' where id = %s", [user])
    backup = tmp_path / "before-erasure.dump"
    subprocess.run(
        [str(POSTGRES_BIN / "pg_dump"), "-Fc", "--no-owner", "--file", str(backup), "--dbname", database], check=True
    )
    tombstone = owner.execute("select app.erase_user(%s) as t", [user]).fetchone()
    assert tombstone is not None
    log = owner.execute("select tombstone_id from public.erasure_log").fetchall()
    assert log == [{"tombstone_id": tombstone["t"]}]  # the tombstone id alone: nobody is named
    assert leaving.export_erasure_log() == 1 and leaving.export_erasure_log() == 0
    assert (tmp_path / "storage" / "erasure-log" / str(tombstone["t"])).exists()

    name = f"restored_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(name)))
    restored = pg_admin_url.replace("/postgres?", f"/{name}?")
    try:
        subprocess.run([str(POSTGRES_BIN / "pg_restore"), "--no-owner", "--dbname", restored, str(backup)], check=True)
        with psycopg.connect(restored, row_factory=dict_row) as conn:
            before = conn.execute("select count(*) as n from public.users where id = %s", [user]).fetchone()
        assert before == {"n": 1}  # the backup predates the erasure
        db.close_pool()
        monkeypatch.setenv("DATABASE_URL", restored)
        config.get_settings.cache_clear()
        assert cli_main(["reapply-erasures"]) == 0
        assert cli_main(["reapply-erasures"]) == 0  # again: nothing left to do
        with psycopg.connect(restored, row_factory=dict_row) as conn:
            users = conn.execute("select id, email, erased_at from public.users").fetchall()
            auth = conn.execute("select count(*) as n from auth.users where email like '%%marker%%'").fetchone()
        assert [(u["id"], u["email"]) for u in users] == [(tombstone["t"], None)]  # the same tombstone
        assert auth == {"n": 0}
    finally:
        db.close_pool()
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("drop database {} with (force)").format(psycopg.sql.Identifier(name)))
