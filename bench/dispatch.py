"""Dispatch throughput: N due monetary consequences executed through trigger_consequence under
gunicorn, against a stand-in for Stripe (its own process) that answers after a fixed delay. Each
consequence makes one provider call (the transfer); its notice is queued in the finishing transaction
and sent later by check_deadlines, so at CLIENTS concurrent requests the stand-in's ceiling is
CLIENTS / DELAY per second.

Then N more consequences of the same seed run without HTTP, in this process (CLIENTS threads calling
the executor), to show what the request layer costs. CPU time by process is measured for both.

    .venv/bin/python -m bench.dispatch [N]
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from urllib.parse import urlparse
from uuid import UUID

import psutil
import psycopg

from bench.common import ROOT, write_section
from bench.cpu import CpuMeter
from bench.servers import database, free_port, gunicorn
from shared.auth import mint_token

CLIENTS = 16
DELAY = 0.020
WORKERS, THREADS = 2, 8
SECRET = "bench-secret-bench-secret-bench-secret-0000"

SEED = """
set session_replication_role = replica;
insert into auth.users (id, email) select gen_random_uuid(), 'd' || n || '@example.com' from generate_series(1, %(n)s) n;
insert into public.users (id, email) select id, email from auth.users;
insert into public.goals (user_id, title, final_deadline, grading_rubric, referee_type, monetary_stake,
                          charity_destination, status)
  select id, 'goal', now() + interval '1 day', 'r', 'ai', 20, 'unicef', 'active' from public.users;
insert into public.checkpoints (goal_id, title, deadline, order_position, status, missed_at)
  select id, 'cp', now() - interval '1 hour', 1, 'missed', now() from public.goals;
insert into public.holding_cells (user_id, reserved_cents) select id, 2000 from public.users;
insert into public.ledger_entries (user_id, entry_type, amount_cents, available_delta, reserved_delta,
                                   forfeited_delta, goal_id, reference)
  select g.user_id, 'stake_reserved', 2000, 0, 2000, 0, g.id, 'reserve:' || g.id from public.goals g;
update public.users set holding_cell_balance = 20.00;
insert into public.consequences (checkpoint_id, goal_id, user_id, consequence_type, monetary_amount,
                                 charity_destination)
  select c.id, c.goal_id, g.user_id, 'monetary', 10.00, 'unicef'
  from public.checkpoints c join public.goals g on g.id = c.goal_id;
set session_replication_role = origin;
analyze;
"""


def _cpu_table(seconds: dict[str, float], n: int, cores: int) -> tuple[str, float, float]:
    """Rows of CPU ms per consequence by process, the total, and what the cores allow at that cost."""
    per = {label: value * 1000 / n for label, value in seconds.items()}
    total = sum(per.values())
    rows = "\n".join(f"| {label} | {value:.2f} | {value / total:.0%} |" for label, value in per.items())
    return rows, total, cores * 1000 / total  # per second, if every core did nothing else


def poster(url: str, token: str) -> Callable[[str], int]:
    """POST /trigger_consequence for one id, over a kept-alive connection per thread; the status."""
    parsed = urlparse(url)
    local = threading.local()

    def post(consequence: str) -> int:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=60)
        local.conn.request(
            "POST",
            "/",
            body=json.dumps({"consequence_id": consequence}),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        response = local.conn.getresponse()
        response.read()
        return int(response.status)

    return post


def drain(ids: list[str], execute: Callable[[str], object], clients: int = CLIENTS) -> float:
    """`clients` threads take ids until none is left; the seconds it took."""
    queue = list(ids)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                consequence = queue.pop()
            execute(consequence)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    standin_port = free_port()
    standins = subprocess.Popen(
        [sys.executable, "-m", "bench.standins", str(standin_port), str(DELAY)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{standin_port}"
    try:
        with database() as url:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(SEED.replace("%(n)s", str(2 * n)).encode())
                ids = [str(r[0]) for r in conn.execute("select id from public.consequences").fetchall()]
                backend = conn.execute("select pg_backend_pid()").fetchone()
            over_http, in_process = ids[:n], ids[n:]
            assert backend is not None
            postmaster = psutil.Process(backend[0]).ppid()  # a backend's parent is the postmaster
            env = {
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
                "LOG_LEVEL": "ERROR",  # as in gunicorn's workers: the run measures work, not logging
            }
            os.environ.update(env)
            token = mint_token(None, role="service_role", ttl_seconds=3600)
            with gunicorn(
                "trigger_consequence",
                ROOT / "functions/trigger_consequence/main.py",
                env,
                workers=WORKERS,
                threads=THREADS,
            ) as (fn_url, fn_pid):
                outcomes: dict[int, int] = {}
                lock = threading.Lock()
                send = poster(fn_url, token)

                def post(consequence: str) -> None:
                    status = send(consequence)
                    with lock:
                        outcomes[status] = outcomes.get(status, 0) + 1

                families = {
                    "the function (gunicorn workers)": fn_pid,
                    "PostgreSQL": postmaster,
                    "the Stripe stand-in": standins.pid,
                    "the clients (this process)": os.getpid(),
                }
                with CpuMeter(families) as meter:
                    elapsed = drain(over_http, post)
            # The same work without HTTP: CLIENTS threads of this process call the executor itself.
            from shared.commitments import engine
            from shared.config import get_settings

            os.environ["DB_POOL_MAX"] = str(CLIENTS)
            get_settings.cache_clear()
            local_families = {
                "the executor (this process)": os.getpid(),
                "PostgreSQL": postmaster,
                "the Stripe stand-in": standins.pid,
            }
            with CpuMeter(local_families) as local_meter:
                local_elapsed = drain(in_process, lambda consequence: engine.execute(UUID(consequence)))
            with psycopg.connect(url) as conn:
                done = conn.execute(
                    "select count(*) from public.consequences where execution_status = 'completed'"
                ).fetchone()
                notices = conn.execute(
                    "select count(*) from public.notifications where type = 'consequence_notification'"
                    " and status = 'queued'"
                ).fetchone()
                forfeits = conn.execute(
                    "select count(*), count(distinct consequence_id) from public.ledger_entries"
                    " where entry_type = 'forfeit'"
                ).fetchone()
        stats = json.loads(urllib.request.urlopen(f"{base}/stats", timeout=5).read())  # noqa: S310
    finally:
        standins.terminate()
        standins.wait(timeout=10)
    rate = n / elapsed
    ceiling = CLIENTS / DELAY
    ratio = rate / ceiling
    duplicates = stats["duplicates"]
    cores = os.cpu_count() or 1
    cpu_rows, total_ms, machine_bound = _cpu_table(meter.seconds, n, cores)
    local_rate = n / local_elapsed
    local_rows, local_total_ms, local_bound = _cpu_table(local_meter.seconds, n, cores)
    print(f"CPU per consequence {total_ms:.1f} ms; {cores} cores allow {machine_bound:.0f}/s")
    print(
        f"{rate:.0f} consequences/s (ceiling {ceiling:.0f}/s, ratio {ratio:.2f}); completed {done}; "
        f"transfers {stats['transfers']} ({duplicates} duplicates); forfeits {forfeits}; outcomes {outcomes}"
    )
    print(f"in this process: {local_rate:.0f}/s (ratio {local_rate / ceiling:.2f}), CPU {local_total_ms:.1f} ms")
    write_section(
        "dispatch",
        f"""
## Dispatch throughput

Command: `.venv/bin/python -m bench.dispatch {n}` (run by `make bench`). {n:,} due monetary consequences, each executed
by a `POST /trigger_consequence` (gunicorn, {WORKERS} workers x {THREADS} threads) from {CLIENTS} concurrent clients.
A stand-in for Stripe runs in its own process, keeps connections alive as Stripe does, and answers after
{DELAY * 1000:.0f} ms. Each consequence makes one
provider call (the transfer); the user's notice is queued by `app.finish_consequence` in the finishing transaction
and sent later by `check_deadlines`, so the stand-in's ceiling at {CLIENTS} in flight is
{CLIENTS} / {DELAY * 1000:.0f} ms = {ceiling:.0f} per second. (Before this change each consequence also sent its notice
through SendGrid inside the request: two calls, a ceiling of {ceiling / 2:.0f} per second, and 47 per second measured,
0.12.) Everything (clients, gunicorn, PostgreSQL, stand-ins) shares this 2-core machine.

| measure | result | target |
|---|---|---|
| consequences per second | {rate:.0f} | |
| ratio to the stand-in's ceiling | {ratio:.2f} | at least 0.5: {"met" if ratio >= 0.5 else "not met"} |
| completed (both runs) | {done[0] if done else "?"} of {2 * n} | all |
| transfer requests / transfers created / consequences paid (both runs) | {stats["requests"]} / {stats["transfers"]} / {stats["consequences"]} | {2 * n} each |
| duplicate transfers (a second transfer created for one consequence, whatever its key) | {duplicates} | 0 |
| forfeits posted / distinct consequences (both runs) | {forfeits[0] if forfeits else "?"} / {forfeits[1] if forfeits else "?"} | equal |
| notices queued with their outcome, sent later by check_deadlines (both runs) | {notices[0] if notices else "?"} | {2 * n} |
| emails sent inside trigger_consequence | {stats["mails"]} | 0 |
| HTTP answers | {outcomes} | all 200 |

Where the machine's time went during the run (CPU time by process family, `bench/cpu.py`, divided by the
consequences executed):

| process | CPU ms per consequence | share |
|---|---|---|
{cpu_rows}
| all | {total_ms:.2f} | |

At {total_ms:.1f} ms of CPU per consequence, {cores} cores can execute at most {machine_bound:.0f} per second
even if they did nothing else: {machine_bound / ceiling:.2f} of the stand-in's ceiling. The measured rate is
{rate / machine_bound:.0%} of that bound.

The same work without HTTP, to show what the request layer costs: another {n:,} consequences of the same seed,
executed by {CLIENTS} threads of the benchmark's own process calling `shared.commitments.engine.execute` (what `check_deadlines`
does when `TRIGGER_CONSEQUENCE_URL` is unset), against the same stand-in and database:

| measure | result |
|---|---|
| consequences per second | {local_rate:.0f} |
| ratio to the stand-in's ceiling | {local_rate / ceiling:.2f} |
| CPU ms per consequence | {local_total_ms:.2f} |
| what {cores} cores allow at that cost | {local_bound:.0f} per second ({local_bound / ceiling:.2f} of the ceiling) |

| process | CPU ms per consequence | share |
|---|---|---|
{local_rows}
""",
    )


if __name__ == "__main__":
    main()
