-- =============================================================================
-- The akrasia horizon (issue 15): changes to an active goal go through change_goal.
-- Easing changes wait out a notice period (CHANGE_NOTICE_DAYS); tightening ones apply
-- at once. Every request is a row here; only the service writes them.
-- =============================================================================

alter type public.goal_status add value if not exists 'canceled' after 'failed';
alter type public.notification_type add value if not exists 'goal_changed' after 'stake_released';

create type public.goal_change_type as enum (
  'pause', 'extend_deadline', 'lower_stake', 'remove_checkpoint', 'cancel_goal',  -- easing: after notice
  'raise_stake', 'add_checkpoint', 'earlier_deadline'                             -- tightening: at once
);

create type public.goal_change_status as enum (
  'pending',   -- easing, waiting for its effective time
  'applied',   -- in effect
  'canceled',  -- withdrawn by the owner before it took effect
  'lapsed'     -- could no longer apply when due (the goal closed, the deadline passed)
);

create table public.goal_change_requests (
  id uuid primary key default gen_random_uuid(),
  goal_id uuid not null references public.goals (id) on delete cascade,
  user_id uuid not null references public.users (id) on delete cascade,
  change_type public.goal_change_type not null,
  change jsonb not null check (jsonb_typeof(change) = 'object' and pg_column_size(change) <= 4096),
  status public.goal_change_status not null default 'pending',
  requested_at timestamptz not null default now(),
  effective_at timestamptz not null,
  applied_at timestamptz,
  canceled_at timestamptz,
  outcome jsonb not null default '{}'::jsonb,
  constraint goal_change_requests_effective_after_request check (effective_at >= requested_at)
);

create index goal_change_requests_goal_idx on public.goal_change_requests (goal_id, requested_at);
create index goal_change_requests_due_idx on public.goal_change_requests (effective_at) where status = 'pending';
-- One easing request waits per goal at a time: a second is refused until the first applies or is withdrawn.
create unique index goal_change_requests_one_pending on public.goal_change_requests (goal_id)
  where status = 'pending';

revoke all on public.goal_change_requests from anon, authenticated;
grant select on public.goal_change_requests to authenticated;
grant all on public.goal_change_requests to service_role;
alter table public.goal_change_requests enable row level security;
alter table public.goal_change_requests force row level security;
create policy "Users can read their own goal change requests."
  on public.goal_change_requests for select to authenticated
  using (user_id = (select auth.uid()));
