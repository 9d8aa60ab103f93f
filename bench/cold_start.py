"""Cold start: a fresh process imports a function's module through functions-framework
and serves its first request (test client, no network). The first request is an
unauthenticated POST of `{}`, answered by the function's own checks (401 or 400).
Median over RUNS fresh processes per function, and the ratio to a hello-world baseline.

    .venv/bin/python -m bench.cold_start [RUNS]
"""

from __future__ import annotations

import os
import subprocess
import sys

from bench.common import ROOT, median, write_section
from bench.plots import bars

CHILD = """
import sys, time
started = time.perf_counter()
from functions_framework import create_app
client = create_app(target=sys.argv[1], source=sys.argv[2]).test_client()
response = client.post("/", json={})
print(f"{(time.perf_counter() - started) * 1000:.2f} {response.status_code}")
"""
# A guard, not a target: pydantic and pydantic-settings stay on the cold path (the request and settings
# models); a function past GUARD times the hello world has grown something new on it.
GUARD = 2.5


def measure_once(name: str, source: str) -> tuple[float, int]:
    env = {
        "PATH": os.environ["PATH"],
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "ERROR",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "SUPABASE_URL": "http://127.0.0.1:1",
        "SUPABASE_JWT_SECRET": "bench-secret-bench-secret-bench-secret-0000",
        "STRIPE_WEBHOOK_SECRET": "whsec_b",
    }
    out = (
        subprocess.run(
            [sys.executable, "-c", CHILD, name, source], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    elapsed, code = out.split()
    return float(elapsed), int(code)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    sources = {"hello": str(ROOT / "bench/hello/main.py")}
    sources.update({p.parent.name: str(p) for p in sorted((ROOT / "functions").glob("*/main.py"))})
    times: dict[str, list[float]] = {name: [] for name in sources}
    statuses: dict[str, int] = {}
    # Round-robin: every round measures the baseline and each function once, so the machine's
    # drift over the run touches them all alike.
    for _ in range(runs):
        for name, source in sources.items():
            elapsed, statuses[name] = measure_once(name, source)
            times[name].append(elapsed)
    baseline = median(times.pop("hello"))
    results = {name: (median(values), statuses[name]) for name, values in times.items()}
    rows = [f"| hello-world baseline | {baseline:.0f} | 1.00 | 200 | |"]
    for name, (value, status) in results.items():
        ratio = value / baseline
        rows.append(f"| {name} | {value:.0f} | {ratio:.2f} | {status} | {'within' if ratio <= GUARD else 'PAST IT'} |")
        print(f"{name:22s} {value:8.0f} ms  x{ratio:.2f}")
    picture = bars(
        "cold_start",
        "Cold start per function beside the hello world",
        "median ms, import and first request",
        {"hello world": baseline, **{name: value for name, (value, _) in results.items()}},
        baseline="hello world",
    )
    write_section(
        "cold-start",
        f"""
## Cold start

Command: `.venv/bin/python -m bench.cold_start {runs}` (run by `make bench`). Median of {runs} fresh
processes per function, measured round-robin with the baseline so the machine's drift touches all alike: import through functions-framework's `create_app`, then the first request
(an unauthenticated `POST {{}}` through the test client, answered by the function's own checks).
Cold start is a guard, not a target: pydantic (the library the project is specified with, for every
request body) and pydantic-settings (its ecosystem's way to read settings) stay on the cold path, and
together cost most of what separates a function from the hello world. The guard is {GUARD}x the
hello-world baseline, measured side by side in the same run: a function past it has grown something new
on its cold path.

{picture}

| function | median ms | ratio | first status | guard |
|---|---|---|---|---|
{chr(10).join(rows)}
""",
    )


if __name__ == "__main__":
    main()
