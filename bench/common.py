"""Shared helpers for the benchmarks: statistics and writing results into docs/benchmarks.md."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_section(name: str, body: str) -> None:
    """Replace the section between <!-- name --> markers in docs/benchmarks.md (adding it if missing)."""
    DOC.parent.mkdir(exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.DOTALL)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def seeded_database(admin_url: str, name: str, seed_sql: str) -> str:
    """A fresh database `name` beside the admin one, migrated (with sql/local/) and seeded; its URL."""
    import psycopg

    from shared.dev import migrate

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("drop database if exists {} with (force)").format(psycopg.sql.Identifier(name)))
        conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(name)))
    url = admin_url.replace("/postgres?", f"/{name}?")
    migrate.migrate(url, local=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(seed_sql.encode())
    return url
