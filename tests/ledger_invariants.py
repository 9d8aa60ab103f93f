"""The ledger's invariants, asserted after every test that touched the database."""

from __future__ import annotations

from typing import Any

import psycopg

CHECKS = {
    "totals equal the sum of entries": """
        select hc.user_id from public.holding_cells hc
        left join (select user_id, sum(available_delta) a, sum(reserved_delta) r, sum(forfeited_delta) f,
                          sum(disputed_delta) d
                   from public.ledger_entries group by user_id) le on le.user_id = hc.user_id
        where hc.available_cents <> coalesce(le.a, 0) or hc.reserved_cents <> coalesce(le.r, 0)
           or hc.forfeited_cents <> coalesce(le.f, 0) or hc.disputed_cents <> coalesce(le.d, 0)
        union all
        select le.user_id from public.ledger_entries le
        left join public.holding_cells hc on hc.user_id = le.user_id where hc.user_id is null""",
    "balance column matches the holding cell": """
        select u.id from public.users u left join public.holding_cells hc on hc.user_id = u.id
        where u.holding_cell_balance * 100 <> coalesce(hc.available_cents + hc.reserved_cents, 0)""",
    "no total below zero": """
        select user_id from public.holding_cells
        where available_cents < 0 or reserved_cents < 0 or forfeited_cents < 0 or disputed_cents < 0""",
    "a consequence forfeits at most once": """
        select consequence_id from public.ledger_entries where entry_type = 'forfeit' and consequence_id is not null
        group by consequence_id having count(*) > 1""",
    "no goal's reserve below zero": """
        select goal_id from public.ledger_entries where goal_id is not null
        group by goal_id having sum(reserved_delta) < 0""",
    "per goal, earmarked plus forfeited never exceeds the stake": """
        select g.id from public.goals g
        where coalesce((select sum(c.earmarked_cents) from public.consequences c where c.goal_id = g.id), 0)
            + coalesce((select sum(le.forfeited_delta) from public.ledger_entries le where le.goal_id = g.id), 0)
            > g.monetary_stake * 100""",
    "a finished consequence holds no earmark": """
        select id from public.consequences where earmarked_cents > 0 and execution_status in ('completed', 'failed')""",
    "the books balance: what Stripe holds equals users' cells plus the platform accounts": """
        select app.books_difference() as difference where app.books_difference() <> 0""",
    "each withdrawal debited exactly once, by its amount": """
        select w.id from public.withdrawals w
        left join public.ledger_entries le on le.reference = 'withdrawal:' || w.id
        where le.amount_cents is distinct from w.amount_cents""",
}


def assert_ledger_invariants(url: str) -> None:
    broken: dict[str, list[Any]] = {}
    with psycopg.connect(url) as conn:
        for name, sql in CHECKS.items():
            rows = conn.execute(sql).fetchall()
            if rows:
                broken[name] = rows
    assert not broken, f"ledger invariants broken: {broken}"
