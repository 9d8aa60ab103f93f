"""AES-256-GCM sealing of kompromat and tokens, in the application, never in the database.

Each item gets a fresh 96-bit nonce. Kompromat is sealed under its owner's data key
(seal_for_user), itself wrapped by a KOMPROMAT_KEYS master key; other items (X tokens) under a
master key picked by id. Keys rotate without losing old items. Associated data binds
each ciphertext to its row (purpose, row id, user id): a ciphertext copied to
another row does not decrypt. Stored form: nonce || ciphertext-with-tag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shared.config import get_settings

NONCE_BYTES = 12


class SealingError(Exception):
    """Decryption failed: wrong row, tampered bytes, or an unknown key. Carries no content."""


@dataclass(frozen=True)
class Sealed:
    key_id: str
    blob: bytes


def _aad(purpose: str, row_id: UUID | str, user_id: UUID | str) -> bytes:
    return f"threativator:{purpose}:{row_id}:{user_id}".encode()


def _key(key_id: str) -> bytes:
    keys = get_settings().kompromat_key_map()
    try:
        return keys[key_id]
    except KeyError:
        raise SealingError(f"unknown key id {key_id!r}") from None


def seal(plaintext: bytes, *, purpose: str, row_id: UUID | str, user_id: UUID | str) -> Sealed:
    """Encrypt with the newest key, bound to (purpose, row, user)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key_id = get_settings().active_kompromat_key_id()
    nonce = os.urandom(NONCE_BYTES)
    blob = nonce + AESGCM(_key(key_id)).encrypt(nonce, plaintext, _aad(purpose, row_id, user_id))
    return Sealed(key_id=key_id, blob=blob)


def open_sealed(sealed: Sealed, *, purpose: str, row_id: UUID | str, user_id: UUID | str, conn: Any = None) -> bytes:
    """Decrypt; any mismatch of key, row, user or bytes raises SealingError. An item sealed under
    its owner's data key (USER_KEY) needs that key, which erasure destroys."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(sealed.blob) <= NONCE_BYTES:
        raise SealingError("ciphertext is truncated")
    nonce, body = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
    if sealed.key_id == USER_KEY:
        key = _with_conn(conn, lambda c: _data_key(c, user_id, create=False))
    else:
        key = _key(sealed.key_id)
    try:
        return AESGCM(key).decrypt(nonce, body, _aad(purpose, row_id, user_id))
    except InvalidTag:
        raise SealingError("ciphertext does not authenticate for this row") from None


# -----------------------------------------------------------------------------
# Per-user data keys: erasing a user's key makes every copy of their ciphertext unreadable
# -----------------------------------------------------------------------------
# Kompromat is sealed under its owner's data key (a random AES-256 key), which is itself wrapped
# by a KOMPROMAT_KEYS master key and kept in public.user_data_keys. Erasure deletes the wrapped
# key: any copy of the ciphertext taken before (a backup, WAL) no longer opens with the master
# keys. Rotating the master keys re-wraps the data keys (threativator rotate-keys).
USER_KEY = "user"


def _wrap_aad(user_id: UUID | str) -> bytes:
    return f"threativator:data-key:{user_id}".encode()


def _data_key(conn: Any, user_id: UUID | str, *, create: bool) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    row = conn.execute("select key_id, wrapped from public.user_data_keys where user_id = %s", [user_id]).fetchone()
    if row is None:
        if not create:
            raise SealingError("the owner's data key no longer exists")
        key_id = get_settings().active_kompromat_key_id()
        data_key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(NONCE_BYTES)
        wrapped = nonce + AESGCM(_key(key_id)).encrypt(nonce, data_key, _wrap_aad(user_id))
        conn.execute(
            "insert into public.user_data_keys (user_id, key_id, wrapped) values (%s, %s, %s)"
            " on conflict (user_id) do nothing",
            [user_id, key_id, wrapped],
        )
        row = conn.execute("select key_id, wrapped from public.user_data_keys where user_id = %s", [user_id]).fetchone()
    blob = bytes(row["wrapped"])
    try:
        return bytes(AESGCM(_key(row["key_id"])).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _wrap_aad(user_id)))
    except InvalidTag:
        raise SealingError("the owner's data key does not authenticate") from None


def _with_conn(conn: Any, work: Any) -> Any:
    if conn is not None:
        return work(conn)
    from shared import db

    with db.as_service() as own:
        return work(own)


def seal_for_user(
    plaintext: bytes, *, purpose: str, row_id: UUID | str, user_id: UUID | str, conn: Any = None
) -> Sealed:
    """Encrypt under the owner's data key (created on first use), bound to (purpose, row, user)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data_key = _with_conn(conn, lambda c: _data_key(c, user_id, create=True))
    nonce = os.urandom(NONCE_BYTES)
    return Sealed(USER_KEY, nonce + AESGCM(data_key).encrypt(nonce, plaintext, _aad(purpose, row_id, user_id)))


def rewrap_data_keys(active: str, conn: Any) -> int:
    """Re-wrap every data key not under the active master key. Returns how many."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    rows = conn.execute(
        "select user_id from public.user_data_keys where key_id <> %s for update skip locked", [active]
    ).fetchall()
    for row in rows:
        data_key = _data_key(conn, row["user_id"], create=False)
        nonce = os.urandom(NONCE_BYTES)
        wrapped = nonce + AESGCM(_key(active)).encrypt(nonce, data_key, _wrap_aad(row["user_id"]))
        conn.execute(
            "update public.user_data_keys set key_id = %s, wrapped = %s where user_id = %s",
            [active, wrapped, row["user_id"]],
        )
    return len(rows)
