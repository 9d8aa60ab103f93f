"""Dispatch against Stripe's rate limit: check_deadlines starts at most DISPATCH_PER_SECOND
consequences a second (Stripe allows about 100 writes a second in live mode, one per payout), and a
Stripe 429 only delays a consequence: it is paid once, after its backoff."""

from __future__ import annotations

import itertools
import threading

import pytest

from shared.commitments import deadlines
from tests import factories as f
from tests.conftest import Providers
from tests.test_engine import Conn, check, consequences, overdue_goal


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_dispatch_starts_at_most_its_rate_across_threads() -> None:
    clock = Clock()
    pace = deadlines.Pace(80, clock=clock, sleep=clock.sleep)
    starts: list[float] = []
    lock = threading.Lock()

    def start() -> None:
        pace.wait()
        with lock:
            starts.append(pace._next - pace.interval)  # the slot this start was given

    threads = [threading.Thread(target=start) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ordered = sorted(starts)
    assert len(set(ordered)) == 40  # every start its own slot
    assert all(b - a == pytest.approx(1 / 80) for a, b in itertools.pairwise(ordered))
    assert deadlines.Pace(0).interval == 0  # 0: unpaced


def test_a_stripe_429_delays_a_payout_and_it_is_paid_once(providers: Providers, owner: Conn) -> None:
    user = f.user(owner)
    goal = f.goal(owner, user, stake="25.00", checkpoints=0)
    overdue_goal(owner, goal)
    providers.stripe.fail_next("/v1/transfers", 429)  # Stripe's SDK leaves a rate limit to us
    first = check()
    assert providers.stripe.objects.get("transfer", []) == []
    [waiting] = consequences(owner)
    assert waiting["execution_status"] == "pending" and "RateLimitError" in (waiting["last_error"] or "")
    owner.execute("update public.consequences set next_attempt_at = now()")
    check()
    assert [t["amount"] for t in providers.stripe.objects["transfer"]] == [2500]
    [paid] = consequences(owner)
    assert paid["execution_status"] == "completed" and paid["attempts"] == 2
    assert first["failures"] == 0  # a rate limit is a delay, never a failure
