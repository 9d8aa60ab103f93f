-- =============================================================================
-- The contest window: every consequence detection creates is held until
-- execute_after; its owner may contest it once while held, and a contested
-- consequence waits for an operator's decision (execute or cancel).
-- =============================================================================
alter type public.execution_status_enum add value if not exists 'held' before 'pending';
alter type public.execution_status_enum add value if not exists 'canceled';

create type public.contest_status as enum ('none', 'contested', 'upheld', 'overturned');

alter table public.consequences
  add column execute_after timestamptz,
  add column contest_status public.contest_status not null default 'none',
  add column contest_reason text check (char_length(contest_reason) between 1 and 2000),
  add column contested_at timestamptz,
  add column decided_by uuid references public.users (id) on delete set null,
  add column decided_at timestamptz,
  add column decision_reason text check (char_length(decision_reason) between 1 and 2000);

create index consequences_held_by_time on public.consequences (execute_after)
  where contest_status = 'none';
create index consequences_contested on public.consequences (contested_at)
  where contest_status = 'contested';
