"""Supabase through supabase-py, with the service credential: proof files in Storage, and the
Auth admin API (deleting an account's Auth user when it is erased)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.config import get_settings
from shared.providers import once_per_process
from shared.providers.errors import ProviderRefused, ProviderUnavailable


def dry() -> bool:
    """No Supabase service credential outside production (make dev): record instead of calling."""
    settings = get_settings()
    return settings.service_credential() is None and settings.providers_dry()


@once_per_process
def client() -> Any:
    """One supabase-py client per process, with the service credential."""
    from supabase import create_client
    from supabase.lib.client_options import SyncClientOptions

    settings = get_settings()
    return create_client(
        settings.supabase_url,
        settings.service_credential() or settings.require("supabase_secret_keys"),
        options=SyncClientOptions(storage_client_timeout=20),
    )


def local_object(bucket: str, path: str) -> Path:
    """Where make dev keeps an object (DEV_STORAGE_DIR/<bucket>/<path>); ProviderRefused for a path
    that would leave the folder or when no folder is set."""
    root = get_settings().dev_storage_dir
    if root is None:
        raise ProviderRefused("no proof storage is configured (set SUPABASE_SECRET_KEYS or DEV_STORAGE_DIR)")
    base = Path(root).resolve() / bucket
    target = (base / path).resolve()
    if not path or "\x00" in path or not target.is_relative_to(base) or target == base:
        raise ProviderRefused("not a valid object path")
    return target


def download(path: str) -> bytes:
    """One object from the proof bucket; ProviderUnavailable on a transport fault, ProviderRefused otherwise."""
    import httpx

    if dry():
        target = local_object(get_settings().submission_bucket, path)
        if not target.is_file():
            raise ProviderRefused("the proof file could not be read from storage")
        return target.read_bytes()
    try:
        data: bytes = client().storage.from_(get_settings().submission_bucket).download(path)
    except httpx.TransportError:
        raise ProviderUnavailable("proof storage is unreachable") from None
    except Exception:
        # storage3 raises its own error for a missing object or a refused read.
        raise ProviderRefused("the proof file could not be read from storage") from None
    return data


def remove(paths: list[str]) -> None:
    """Delete proof files (erasure). A file already gone is no error; an outage is ProviderUnavailable."""
    import httpx

    if not paths:
        return
    if dry():
        from shared.providers import outbox

        if get_settings().dev_storage_dir is not None:
            for path in paths:
                local_object(get_settings().submission_bucket, path).unlink(missing_ok=True)
        outbox.record("storage", None, f"{len(paths)} proof file(s) deleted", {"paths": len(paths)})
        return
    try:
        client().storage.from_(get_settings().submission_bucket).remove(paths)
    except httpx.TransportError:
        raise ProviderUnavailable("proof storage is unreachable") from None
    except Exception:
        raise ProviderUnavailable("proof storage refused the deletion; try again") from None


def delete_auth_user(user_id: str) -> None:
    """Delete the Auth user through Supabase's Auth admin API (auth.admin.deleteUser)."""
    import httpx

    if dry():
        # The local stack's stand-in for Supabase Auth is its auth.users table: deleted as Auth would.
        from shared import db
        from shared.providers import outbox

        with db.transaction() as conn:
            conn.execute("delete from auth.users where id = %s", [user_id])
        outbox.record("auth", None, "Auth user deleted", {})
        return
    try:
        client().auth.admin.delete_user(user_id)
    except httpx.TransportError:
        raise ProviderUnavailable("Supabase Auth is unreachable") from None
    except Exception as error:
        if getattr(error, "status", None) == 404:
            return  # already gone
        raise ProviderUnavailable("Supabase Auth refused the deletion; try again") from None
