"""The master keys' lifecycle, so an erasure reaches backups (check_deadlines' `keys` stage).

Every per-user data key, and every item still sealed under a master key, is re-wrapped under the
active KOMPROMAT_KEYS key; the key it replaced is retired and may be destroyed once
BACKUP_RETENTION_DAYS have passed (app.sync_master_keys), when no backup it could open remains. A
backup taken before an erasure holds the erased user's wrapped data key under the key active then:
once that key is rotated out (at most KOMPROMAT_KEY_ROTATION_DAYS later) and destroyed (the
retention later), no copy of their kompromat opens. The stage reports a rotation that is due and
a key that must now be destroyed (removed from KOMPROMAT_KEYS), loudly, every pass until done.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared import db
from shared.config import get_settings
from shared.log import get_logger

_logger = get_logger("threativator.keys")


def run(batch_size: int = 200) -> dict[str, Any]:
    from shared.account import kompromat, x_oauth

    settings = get_settings()
    active = settings.active_kompromat_key_id()
    configured = list(settings.kompromat_key_map())
    with db.as_service() as conn:
        row = conn.execute(
            "select app.sync_master_keys(%s, %s, %s) as keys",
            [active, configured, timedelta(days=settings.backup_retention_days)],
        ).fetchone()
    state: dict[str, Any] = row["keys"] if row else {}
    # rotate_keys moves items still under a master key to per-user keys, then re-wraps every data key.
    moved = {**kompromat.rotate_keys(active, batch_size), **x_oauth.rotate_keys(active, batch_size)}
    since = datetime.fromisoformat(state["active_since"]) if state.get("active_since") else datetime.now(UTC)
    rotate_by = since + timedelta(days=settings.kompromat_key_rotation_days)
    report = {
        "active": active,
        "rotation_due": datetime.now(UTC) >= rotate_by,
        "rotate_by": rotate_by.isoformat(),
        "rewrapped": sum(moved.values()),
        "destroy_now": state.get("destroy_now", []),
    }
    if report["rotation_due"]:
        _logger.error("master key rotation due", extra={"fields": {"active": active, "rotate_by": report["rotate_by"]}})
    if report["destroy_now"]:
        # Everything is re-wrapped by now (each pass does it): removing the key loses nothing.
        _logger.error("retired master keys must be destroyed", extra={"fields": {"key_ids": report["destroy_now"]}})
    return report
