"""Dispatch against what bounds it in production: Stripe's rate limit.

Stripe allows about 100 write requests a second in live mode. This benchmark measures
`POST /trigger_consequence` (gunicorn) against the Stripe stand-in at 1 to 16 concurrent clients, then
runs a batch against a stand-in that refuses transfers past 100 a second with Stripe's own 429: the
refused ones are retried after their backoff (CONSEQUENCE_BACKOFF_BASE_SECONDS=1), as check_deadlines
does, until every consequence is paid. It counts what was lost or paid twice. Draws the curve.

    .venv/bin/python -m bench.dispatch_limits [PER_LEVEL]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from bench.common import ROOT, write_section
from bench.dispatch import DELAY, SECRET, SEED, THREADS, WORKERS, drain, poster
from bench.plots import lines
from bench.servers import database, free_port, gunicorn
from shared.auth import mint_token

LEVELS = (1, 2, 4, 8, 16)
STRIPE_LIVE_WRITES_PER_SECOND = 100  # Stripe's documented live-mode limit (docs.stripe.com/rate-limits)
LIMITED_BATCH = 1000


@contextmanager
def served(url: str, limit: float | None = None) -> Iterator[tuple[str, str]]:
    """trigger_consequence under gunicorn (its URL), against a Stripe stand-in (its base URL) limited to
    `limit` requests a second."""
    with (
        standins(limit) as base,
        gunicorn(
            "trigger_consequence",
            ROOT / "functions/trigger_consequence/main.py",
            env_for(url, base),
            workers=WORKERS,
            threads=THREADS,
        ) as (fn_url, _),
    ):
        yield fn_url, base


@contextmanager
def standins(limit: float | None = None) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "bench.standins", str(port), str(DELAY)]
    if limit:
        args.append(str(limit))
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/stats", timeout=1).read()  # noqa: S310 - loopback
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def stats(base: str) -> dict[str, int]:
    answer: dict[str, int] = json.loads(urllib.request.urlopen(f"{base}/stats", timeout=5).read())  # noqa: S310
    return answer


def env_for(url: str, base: str) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "SUPABASE_URL": "http://127.0.0.1:1",
        "SUPABASE_JWT_SECRET": SECRET,
        "ENVIRONMENT": "test",
        "STRIPE_API_BASE": base,
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "SENDGRID_API_HOST": base,
        "SENDGRID_API_KEY": "SG.bench",
        "CHARITY_ACCOUNTS": json.dumps({"unicef": "acct_unicef"}),
        "DB_POOL_MAX": str(THREADS),
        "CONSEQUENCE_BACKOFF_BASE_SECONDS": "1",
        "CONSEQUENCE_MAX_ATTEMPTS": "50",
        "LOG_LEVEL": "ERROR",
    }


PACE = 80.0  # DISPATCH_PER_SECOND's default


def limited_round(url: str, token: str, batch: list[str], paced: bool) -> dict[str, float]:
    """One batch against a stand-in limited to Stripe's live rate; asked again until every one is paid."""
    from shared.commitments.deadlines import Pace

    with served(url, STRIPE_LIVE_WRITES_PER_SECOND) as (fn_url, base):
        post = poster(fn_url, token)
        pace = Pace(PACE if paced else 0)

        def paced_post(consequence: str) -> object:
            pace.wait()
            return post(consequence)

        started = time.perf_counter()
        pending = batch
        while pending and time.perf_counter() - started < 300:
            drain(pending, paced_post)
            with psycopg.connect(url) as conn:
                left = conn.execute(
                    "select id::text, next_attempt_at from public.consequences"
                    " where id::text = any(%s) and execution_status <> 'completed'",
                    [batch],
                ).fetchall()
            pending = [r[0] for r in left]
            if pending:  # scheduled after a backoff: ask again once the first is due
                wait = min(r[1] for r in left).timestamp() - time.time()
                time.sleep(min(max(wait, 0.05), 5.0))
        elapsed = time.perf_counter() - started
        counted = stats(base)
    with psycopg.connect(url) as conn:
        done = conn.execute(
            "select count(*), coalesce(max(attempts), 0), count(*) filter (where attempts > 1)"
            " from public.consequences where id::text = any(%s) and execution_status = 'completed'",
            [batch],
        ).fetchone()
        forfeits = conn.execute(
            "select count(*), count(distinct consequence_id) from public.ledger_entries where entry_type = 'forfeit'"
            " and consequence_id::text = any(%s)",
            [batch],
        ).fetchone()
    assert done is not None and forfeits is not None
    return {
        "limited": counted["limited"],
        "transfers": counted["transfers"],
        "duplicates": counted["duplicates"],
        "completed": done[0],
        "max_attempts": done[1],
        "retried": done[2],
        "forfeits": forfeits[0],
        "forfeited": forfeits[1],
        "rate": len(batch) / elapsed,
    }


def main() -> None:
    per_level = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    import os

    os.environ.update({"SUPABASE_URL": "http://127.0.0.1:1", "SUPABASE_JWT_SECRET": SECRET, "ENVIRONMENT": "test"})
    total = per_level * len(LEVELS) + 2 * LIMITED_BATCH
    curve: list[tuple[float, float]] = []
    with database() as url:
        os.environ["DATABASE_URL"] = url
        token = mint_token(None, role="service_role", ttl_seconds=3600)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SEED.replace("%(n)s", str(total)).encode())
            ids = [str(r[0]) for r in conn.execute("select id from public.consequences order by id").fetchall()]
        with served(url) as (fn_url, _):
            post = poster(fn_url, token)
            for index, clients in enumerate(LEVELS):
                batch = ids[index * per_level : (index + 1) * per_level]
                elapsed = drain(batch, post, clients)
                curve.append((clients, len(batch) / elapsed))
                print(f"{clients:2d} clients: {len(batch) / elapsed:.0f}/s")
        rounds: dict[str, dict[str, float]] = {}
        for label, paced in (("paced", True), ("unpaced", False)):
            offset = len(LEVELS) * per_level + (0 if paced else LIMITED_BATCH)
            batch = ids[offset : offset + LIMITED_BATCH]
            rounds[label] = limited_round(url, token, batch, paced)
    unpaced, paced_round = rounds["unpaced"], rounds["paced"]
    print(f"paced: {paced_round}")
    print(f"unpaced: {unpaced}")
    picture = lines(
        "dispatch",
        "Dispatch throughput against concurrency",
        "concurrent clients",
        "consequences per second",
        {
            "measured (trigger_consequence under gunicorn)": curve,
            f"the stand-in's ceiling (clients / {DELAY * 1000:.0f} ms)": [(c, c / DELAY) for c in LEVELS],
        },
        limits={f"Stripe's live write limit ({STRIPE_LIVE_WRITES_PER_SECOND}/s)": STRIPE_LIVE_WRITES_PER_SECOND},
    )
    rows = "\n".join(
        f"| {int(c)} | {r:.0f} | {r / STRIPE_LIVE_WRITES_PER_SECOND:.2f} | {c / DELAY:.0f} |" for c, r in curve
    )
    write_section(
        "dispatch-limits",
        f"""
## Dispatch against Stripe's rate limit

Command: `.venv/bin/python -m bench.dispatch_limits {per_level}` (run by `make bench`). In production what
bounds dispatch is Stripe: about {STRIPE_LIVE_WRITES_PER_SECOND} write requests a second in live mode, and each
consequence's payout is one write (the transfer). {per_level} due monetary consequences per level, each a
`POST /trigger_consequence` (gunicorn, {WORKERS} workers x {THREADS} threads), against the Stripe stand-in
answering after {DELAY * 1000:.0f} ms, on this 2-core machine:

{picture}

| clients | consequences per second | of Stripe's live limit | the stand-in's ceiling |
|---|---|---|---|
{rows}

Then {LIMITED_BATCH:,} more, from 16 clients, against a stand-in that refuses transfers past
{STRIPE_LIVE_WRITES_PER_SECOND} a second with Stripe's own 429 (`rate_limit`): once paced as `check_deadlines`
paces its dispatch (`DISPATCH_PER_SECOND`, {PACE:.0f} starts a second), once unpaced, as 16 callers hammering
`trigger_consequence` would. A refused payout is a `ProviderUnavailable`: the engine releases the claim and
schedules the consequence again after its backoff (here `CONSEQUENCE_BACKOFF_BASE_SECONDS=1`, doubling per
attempt), and the next pass (here, the benchmark asking again once one is due) carries it out:

| measure | paced ({PACE:.0f}/s) | unpaced |
|---|---|---|
| transfers refused with 429 | {paced_round["limited"]:,.0f} | {unpaced["limited"]:,.0f} |
| consequences completed | {paced_round["completed"]:,.0f} of {LIMITED_BATCH:,} | {unpaced["completed"]:,.0f} of {LIMITED_BATCH:,} |
| of them retried after a 429 (most attempts for one) | {paced_round["retried"]:,.0f} ({paced_round["max_attempts"]:.0f}) | {unpaced["retried"]:,.0f} ({unpaced["max_attempts"]:.0f}) |
| transfers created / duplicate transfers | {paced_round["transfers"]:,.0f} / {paced_round["duplicates"]:.0f} | {unpaced["transfers"]:,.0f} / {unpaced["duplicates"]:.0f} |
| forfeits posted / distinct consequences | {paced_round["forfeits"]:,.0f} / {paced_round["forfeited"]:,.0f} | {unpaced["forfeits"]:,.0f} / {unpaced["forfeited"]:,.0f} |
| effective rate, retries included | {paced_round["rate"]:.0f} per second | {unpaced["rate"]:.0f} per second |

A 429 slows dispatch down; it never loses or repeats a consequence: a refused transfer was never created,
and its retry reuses the consequence's idempotency key (`consequence-<id>`). Unpaced, the refused ones wait
out growing backoffs; paced under the limit, nothing is refused and the rate is the pace.
""",
    )


if __name__ == "__main__":
    main()
