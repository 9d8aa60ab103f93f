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


LIST_PAGE = 100
REMOVE_BATCH = 1000  # Storage deletes at most this many objects per request


def folder_paths(folder: str) -> list[str]:
    """Every object under `folder`/ in the proof bucket, listed page by page and folder by folder
    (Storage lists one level at a time; a folder is an entry without an id)."""
    bucket = client().storage.from_(get_settings().submission_bucket)
    found: list[str] = []
    pending = [folder.strip("/")]
    while pending:
        prefix = pending.pop()
        offset = 0
        while True:
            page = bucket.list(
                prefix, {"limit": LIST_PAGE, "offset": offset, "sortBy": {"column": "name", "order": "asc"}}
            )
            for entry in page:
                path = f"{prefix}/{entry['name']}"
                (found if entry.get("id") else pending).append(path)
            if len(page) < LIST_PAGE:
                break
            offset += LIST_PAGE
    return found


def remove_folder(folder: str) -> int:
    """Delete everything under a user's folder, files that never became submissions included (erasure).
    Returns how many objects were deleted; an outage is ProviderUnavailable, and a later pass retries."""
    import httpx

    if not folder.strip("/") or "/" in folder.strip("/") or ".." in folder:
        raise ProviderRefused("not a user's folder")
    if dry():
        import shutil

        root = get_settings().dev_storage_dir
        if root is None:
            return 0
        target = local_object(get_settings().submission_bucket, folder.strip("/"))
        count = sum(1 for p in target.rglob("*") if p.is_file()) if target.is_dir() else 0
        shutil.rmtree(target, ignore_errors=True)
        return count
    try:
        paths = folder_paths(folder)
        for start in range(0, len(paths), REMOVE_BATCH):
            client().storage.from_(get_settings().submission_bucket).remove(paths[start : start + REMOVE_BATCH])
    except httpx.TransportError:
        raise ProviderUnavailable("proof storage is unreachable") from None
    except ProviderRefused:
        raise
    except Exception:
        raise ProviderUnavailable("proof storage refused the listing or deletion; try again") from None
    return len(paths)


ERASURE_LOG_BUCKET = "erasure-log"


def log_erasure(tombstone_id: str) -> None:
    """One erasure log entry, kept outside the database (and so outside its backups): an empty
    object named by the tombstone id, in a private bucket only the service reaches."""
    import httpx

    if dry():
        from shared.providers import outbox

        if get_settings().dev_storage_dir is not None:
            target = local_object(ERASURE_LOG_BUCKET, tombstone_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        outbox.record("storage", None, "erasure logged", {"tombstone_id": tombstone_id})
        return
    try:
        client().storage.from_(ERASURE_LOG_BUCKET).upload(
            tombstone_id, b"", {"content-type": "text/plain", "upsert": "true"}
        )
    except httpx.TransportError:
        raise ProviderUnavailable("proof storage is unreachable") from None
    except Exception:
        raise ProviderUnavailable("storage refused the erasure log entry; try again") from None


def erasure_log() -> list[str]:
    """Every tombstone id the erasure log outside the database holds, page by page."""
    if dry():
        root = get_settings().dev_storage_dir
        if root is None:
            return []
        folder = Path(root).resolve() / ERASURE_LOG_BUCKET
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    bucket = client().storage.from_(ERASURE_LOG_BUCKET)
    found: list[str] = []
    offset = 0
    while True:
        page = bucket.list("", {"limit": LIST_PAGE, "offset": offset, "sortBy": {"column": "name", "order": "asc"}})
        found += [entry["name"] for entry in page if entry.get("id")]
        if len(page) < LIST_PAGE:
            return found
        offset += LIST_PAGE


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
