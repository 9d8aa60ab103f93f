"""Supabase Storage through supabase-py, with the service key: proof files."""

from __future__ import annotations

from shared.config import get_settings
from shared.providers.errors import ProviderRefused, ProviderUnavailable


def download(path: str) -> bytes:
    """One object from the proof bucket; ProviderUnavailable on a transport fault, ProviderRefused otherwise."""
    import httpx
    from supabase import create_client
    from supabase.lib.client_options import SyncClientOptions

    settings = get_settings()
    client = create_client(
        settings.supabase_url,
        settings.require("supabase_service_role_key"),
        options=SyncClientOptions(storage_client_timeout=20),
    )
    try:
        data: bytes = client.storage.from_(settings.submission_bucket).download(path)
    except httpx.TransportError:
        raise ProviderUnavailable("proof storage is unreachable") from None
    except Exception:
        # storage3 raises its own error for a missing object or a refused read.
        raise ProviderRefused("the proof file could not be read from storage") from None
    return data
