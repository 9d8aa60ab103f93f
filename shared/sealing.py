"""AES-256-GCM sealing of kompromat and tokens, in the application, never in the database.

Each item gets a fresh 96-bit nonce. The key is picked by id from
KOMPROMAT_KEYS, so keys rotate without losing old items. Associated data binds
each ciphertext to its row (purpose, row id, user id): a ciphertext copied to
another row does not decrypt. Stored form: nonce || ciphertext-with-tag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


def open_sealed(sealed: Sealed, *, purpose: str, row_id: UUID | str, user_id: UUID | str) -> bytes:
    """Decrypt; any mismatch of key, row, user or bytes raises SealingError."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(sealed.blob) <= NONCE_BYTES:
        raise SealingError("ciphertext is truncated")
    nonce, body = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
    try:
        return AESGCM(_key(sealed.key_id)).decrypt(nonce, body, _aad(purpose, row_id, user_id))
    except InvalidTag:
        raise SealingError("ciphertext does not authenticate for this row") from None
