"""The development outbox: what a provider without a key would have been sent, recorded instead.

Used only outside production (Settings.providers_dry); nothing leaves the machine.
"""

from __future__ import annotations

from typing import Any

from shared import db


def record(channel: str, recipient: str | None, summary: str, payload: dict[str, Any]) -> int | None:
    """Write one outbox row and print one readable line; returns the row id."""
    with db.as_service() as conn:
        row = conn.execute(
            "insert into public.dev_outbox (channel, recipient, summary, payload) values (%s, %s, %s, %s) returning id",
            [channel, recipient, summary, db.Json(payload)],
        ).fetchone()
    print(f"[outbox] {channel}: {summary}" + (f" → {recipient}" if recipient else ""), flush=True)
    return int(row["id"]) if row else None
