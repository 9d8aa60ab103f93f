"""Request overhead: an authenticated request that reads the database (a refused vouch: the
owner vouching for their own submission) against a hello-world function, both under gunicorn
with the same workers and threads, driven by the same closed-loop client for the same time.

    .venv/bin/python -m bench.overhead [SECONDS]
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import uuid
from urllib.parse import urlparse

import psycopg

from bench.common import ROOT, median, percentile, write_section
from bench.servers import WORKERS, database, gunicorn
from shared.auth import mint_token

CLIENTS = 8
SECRET = "bench-secret-bench-secret-bench-secret-0000"


def load(url: str, body: bytes, headers: dict[str, str], seconds: float) -> tuple[float, list[float], dict[int, int]]:
    parsed = urlparse(url)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
        mine: list[float] = []
        seen: dict[int, int] = {}
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            conn.request("POST", "/", body=body, headers={"Content-Type": "application/json", **headers})
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            seen[response.status] = seen.get(response.status, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, n in seen.items():
                statuses[code] = statuses.get(code, 0) + n

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - began), latencies, statuses


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    with database() as url:
        user = uuid.uuid4()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "insert into auth.users (id, email, email_confirmed_at) values (%s, 'b@example.com', now())", [user]
            )
            goal = conn.execute(
                "insert into public.goals (user_id, title, final_deadline, grading_rubric,"
                " referee_type, monetary_stake, charity_destination) values (%s, 'g',"
                " now() + interval '9 days', 'r', 'ai', 0, 'unicef') returning id",
                [user],
            ).fetchone()
            assert goal is not None
            conn.execute("select app.activate_goal(%s)", [goal[0]])
            checkpoint = conn.execute("select id from public.checkpoints where goal_id = %s", [goal[0]]).fetchone()
            assert checkpoint is not None
            submission = conn.execute(
                "insert into public.submissions (checkpoint_id, user_id, submission_type,"
                " external_url, status, ai_analysis_result) values (%s, %s, 'url', 'https://x',"
                " 'failed', '{}') returning id",
                [checkpoint[0], user],
            ).fetchone()
            assert submission is not None
        env = {
            "DATABASE_URL": url,
            "SUPABASE_URL": "http://127.0.0.1:1",
            "SUPABASE_JWT_SECRET": SECRET,
            "ENVIRONMENT": "test",
        }
        import os

        os.environ.update(env)
        token = mint_token(str(user), ttl_seconds=3600)
        vouch = json.dumps({"action": "vouch", "submission_id": str(submission[0])}).encode()
        with gunicorn("hello", ROOT / "bench/hello/main.py", env) as (hello_url, _):
            load(hello_url, b"{}", {}, 1.0)  # warm up every worker
            base_rps, base_lat, base_status = load(hello_url, b"{}", {}, seconds)
        with gunicorn("grade_submission", ROOT / "functions/grade_submission/main.py", env) as (fn_url, _):
            load(fn_url, vouch, {"Authorization": f"Bearer {token}"}, 1.0)
            rps, lat, status = load(fn_url, vouch, {"Authorization": f"Bearer {token}"}, seconds)
    ratio = rps / base_rps
    print(f"hello {base_rps:.0f} rps, vouch refusal {rps:.0f} rps, ratio {ratio:.2f}; statuses {status}")
    write_section(
        "overhead",
        f"""
## Request overhead

Command: `.venv/bin/python -m bench.overhead {seconds:g}` (run by `make bench`). gunicorn with {WORKERS} workers x 4
threads for both; {CLIENTS} closed-loop keep-alive clients for {seconds:g} s each, on this 2-core machine (clients,
server and database share it). The measured request is a `vouch` the database refuses (JWT verified, body
parsed, RLS-scoped read, refusal mapped to 403), against a hello-world function.

| server | requests/s | p50 ms | p99 ms | statuses |
|---|---|---|---|---|
| hello world | {base_rps:.0f} | {median(base_lat) * 1000:.1f} | {percentile(base_lat, 99) * 1000:.1f} | {base_status} |
| grade_submission (vouch refusal) | {rps:.0f} | {median(lat) * 1000:.1f} | {percentile(lat, 99) * 1000:.1f} | {status} |

Ratio (vouch refusal / hello world, requests per second): **{ratio:.2f}**.
""",
    )


if __name__ == "__main__":
    main()
