-- =============================================================================
-- Earmarks: money is earmarked against its goal, under a lock on the goal, when a
-- monetary consequence is claimed, before any transfer; recording the transfer
-- turns the earmark into the forfeit, and a permanent failure releases it.
-- Per goal, earmarked + forfeited never exceeds the stake, and earmarked never
-- exceeds what the goal still holds: a deferred constraint trigger
-- (sql/functions/ledger.sql) checks both at every commit that touches them.
-- =============================================================================
alter table public.consequences
  add column earmarked_cents bigint not null default 0
    constraint consequences_earmark_never_negative check (earmarked_cents >= 0);

-- Earmarks are looked up per goal under its lock.
create index consequences_earmarked_by_goal on public.consequences (goal_id) where earmarked_cents > 0;
