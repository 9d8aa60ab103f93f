-- =============================================================================
-- The holding cell: an append-only ledger of money held for each user, its
-- running totals, withdrawals as Stripe refunds, and processed Stripe events.
--
-- Every entry has a unique reference (a Stripe object, a goal or a
-- consequence), so replaying anything posts nothing twice. Totals move in the
-- same statement as the entry, and check constraints keep them non-negative.
-- =============================================================================

-- -----------------------------------------------------------------------------
-- Types
-- -----------------------------------------------------------------------------
create type public.ledger_entry_type as enum (
  'deposit',              -- card payment succeeded: +available
  'stake_reserved',       -- goal activated: available -> reserved
  'stake_released',       -- goal completed: reserved -> available
  'forfeit',              -- consequence paid to charity: reserved -> forfeited
  'withdrawal',           -- user asked for money back: -available
  'withdrawal_reversed',  -- a withdrawal's refund failed: +available
  'refund'                -- a refund made outside Threativator (Dashboard, dispute)
);

create type public.refund_status as enum ('planned', 'pending', 'succeeded', 'failed', 'canceled');

-- -----------------------------------------------------------------------------
-- Tables
-- -----------------------------------------------------------------------------
create table public.holding_cells (
  user_id uuid primary key references public.users (id) on delete cascade,
  available_cents bigint not null default 0
    constraint holding_cells_available_never_negative check (available_cents >= 0),
  reserved_cents bigint not null default 0
    constraint holding_cells_reserved_never_negative check (reserved_cents >= 0),
  forfeited_cents bigint not null default 0 check (forfeited_cents >= 0),
  updated_at timestamptz not null default now()
);

create table public.ledger_entries (
  id bigint generated always as identity primary key,
  user_id uuid not null references public.users (id) on delete cascade,
  entry_type public.ledger_entry_type not null,
  amount_cents bigint not null check (amount_cents > 0),
  available_delta bigint not null,
  reserved_delta bigint not null,
  forfeited_delta bigint not null,
  goal_id uuid references public.goals (id) on delete set null,
  consequence_id uuid references public.consequences (id) on delete set null,
  stripe_object_id text,
  reference text not null constraint ledger_entries_reference_unique unique,
  created_at timestamptz not null default now()
);

create table public.withdrawals (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  amount_cents bigint not null check (amount_cents > 0),
  idempotency_key text not null check (char_length(idempotency_key) between 1 and 255),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint withdrawals_one_per_key unique (user_id, idempotency_key)
);

-- One Stripe refund per deposit a withdrawal draws on, oldest deposit first.
create table public.withdrawal_refunds (
  id uuid primary key default gen_random_uuid(),
  withdrawal_id uuid not null references public.withdrawals (id) on delete cascade,
  user_id uuid not null references public.users (id) on delete cascade,
  payment_intent_id text not null,
  position integer not null check (position > 0),
  amount_cents bigint not null check (amount_cents > 0),
  stripe_refund_id text unique,
  status public.refund_status not null default 'planned',
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Each Stripe event, once. Only ids and types: payloads carry personal data.
create table public.stripe_events (
  id text primary key,
  type text not null,
  object_id text,
  received_at timestamptz not null default now()
);

create index ledger_entries_user_idx on public.ledger_entries (user_id, id);
create index ledger_entries_goal_idx on public.ledger_entries (goal_id) where goal_id is not null;
create index ledger_entries_stripe_idx on public.ledger_entries (stripe_object_id)
  where stripe_object_id is not null;
create index withdrawals_user_idx on public.withdrawals (user_id);
create index withdrawal_refunds_user_idx on public.withdrawal_refunds (user_id);
create index withdrawal_refunds_intent_idx on public.withdrawal_refunds (payment_intent_id);

-- -----------------------------------------------------------------------------
-- Triggers
-- -----------------------------------------------------------------------------
create trigger withdrawals_touch before update on public.withdrawals
  for each row execute function app.touch_updated_at();
create trigger withdrawal_refunds_touch before update on public.withdrawal_refunds
  for each row execute function app.touch_updated_at();

-- -----------------------------------------------------------------------------
-- RLS: owners read their own money; only the service writes it.
-- -----------------------------------------------------------------------------
revoke all on public.holding_cells, public.ledger_entries, public.withdrawals,
  public.withdrawal_refunds, public.stripe_events from anon, authenticated;
grant select on public.holding_cells, public.ledger_entries, public.withdrawals,
  public.withdrawal_refunds to authenticated;
grant all on public.holding_cells, public.ledger_entries, public.withdrawals,
  public.withdrawal_refunds, public.stripe_events to service_role;

alter table public.holding_cells enable row level security;
alter table public.holding_cells force row level security;
alter table public.ledger_entries enable row level security;
alter table public.ledger_entries force row level security;
alter table public.withdrawals enable row level security;
alter table public.withdrawals force row level security;
alter table public.withdrawal_refunds enable row level security;
alter table public.withdrawal_refunds force row level security;
alter table public.stripe_events enable row level security;
alter table public.stripe_events force row level security;

create policy "Users can read their own holding cell."
  on public.holding_cells for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can read their own ledger."
  on public.ledger_entries for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can read their own withdrawals."
  on public.withdrawals for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can read the refunds of their own withdrawals."
  on public.withdrawal_refunds for select to authenticated
  using (user_id = (select auth.uid()));

-- -----------------------------------------------------------------------------
-- State functions
-- -----------------------------------------------------------------------------

-- Posts one ledger entry and moves the totals with it; a reference already
-- posted changes nothing and returns false. Totals that would go negative
-- raise check_violation, rolling the entry back with them.
create function app.ledger_post(
  p_user_id uuid,
  p_type public.ledger_entry_type,
  p_amount_cents bigint,
  p_available_delta bigint,
  p_reserved_delta bigint,
  p_forfeited_delta bigint,
  p_reference text,
  p_goal_id uuid default null,
  p_consequence_id uuid default null,
  p_stripe_object_id text default null
) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_id bigint;
begin
  insert into public.holding_cells (user_id) values (p_user_id) on conflict (user_id) do nothing;
  insert into public.ledger_entries (user_id, entry_type, amount_cents, available_delta, reserved_delta,
    forfeited_delta, reference, goal_id, consequence_id, stripe_object_id)
  values (p_user_id, p_type, p_amount_cents, p_available_delta, p_reserved_delta, p_forfeited_delta,
    p_reference, p_goal_id, p_consequence_id, p_stripe_object_id)
  on conflict (reference) do nothing
  returning id into v_id;
  if v_id is null then
    return false;
  end if;
  begin
    update public.holding_cells
    set available_cents = available_cents + p_available_delta,
        reserved_cents = reserved_cents + p_reserved_delta,
        forfeited_cents = forfeited_cents + p_forfeited_delta,
        updated_at = now()
    where user_id = p_user_id;
  exception when check_violation then
    raise exception using errcode = '23514',
      message = 'insufficient funds in the holding cell for this ' || replace(p_type::text, '_', ' ');
  end;
  update public.users
  set holding_cell_balance = (
    select (hc.available_cents + hc.reserved_cents) / 100.0
    from public.holding_cells hc where hc.user_id = p_user_id)
  where id = p_user_id;
  perform app.audit('ledger', null, p_type::text, p_user_id,
    jsonb_build_object('amount_cents', p_amount_cents, 'reference', p_reference));
  return true;
end
$$;

-- Credits a succeeded card payment, once per PaymentIntent.
create function app.credit_deposit(p_user_id uuid, p_amount_cents bigint, p_payment_intent_id text)
returns boolean
language sql security definer
set search_path = ''
as $$
  select app.ledger_post(p_user_id, 'deposit', p_amount_cents, p_amount_cents, 0, 0,
    'deposit:' || p_payment_intent_id, null, null, p_payment_intent_id)
$$;

-- The part of a goal's stake still held in reserve.
create function app.goal_reserved_cents(p_goal_id uuid) returns bigint
language sql stable security definer
set search_path = ''
as $$
  select coalesce(sum(le.reserved_delta), 0)::bigint from public.ledger_entries le where le.goal_id = p_goal_id
$$;

-- Releases what remains of a completed goal's stake back to available, once.
create function app.release_stake(p_goal_id uuid) returns bigint
language plpgsql security definer
set search_path = ''
as $$
declare
  v_user uuid;
  v_remaining bigint;
begin
  select g.user_id into v_user from public.goals g where g.id = p_goal_id;
  perform 1 from public.holding_cells where user_id = v_user for update;
  v_remaining := app.goal_reserved_cents(p_goal_id);
  if v_remaining > 0 then
    perform app.ledger_post(v_user, 'stake_released', v_remaining, v_remaining, -v_remaining, 0,
      'release:' || p_goal_id, p_goal_id);
  end if;
  return v_remaining;
end
$$;

-- Activation now reserves the stake; it is refused when the available balance is short.
create or replace function app.activate_goal(p_goal_id uuid) returns public.goals
language plpgsql security definer
set search_path = ''
as $$
declare
  v_goal public.goals;
  v_next_position integer;
  v_stake_cents bigint;
begin
  select * into v_goal from public.goals where id = p_goal_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = 'goal not found';
  end if;
  if v_goal.status <> 'draft' then
    raise exception using errcode = '55000', message = 'only a draft goal can be activated; this goal is ' || v_goal.status;
  end if;
  if v_goal.final_deadline <= now() then
    raise exception using errcode = '23514', message = 'the final deadline must be in the future';
  end if;
  if exists (select 1 from public.checkpoints cp where cp.goal_id = p_goal_id and cp.deadline <= now()) then
    raise exception using errcode = '23514', message = 'every checkpoint deadline must be in the future';
  end if;
  if v_goal.referee_type = 'human_witness' and not exists (
       select 1 from public.contacts c
       where c.id = v_goal.witness_contact_id and c.verified and c.declined_at is null) then
    raise exception using errcode = '23514',
      message = 'a witness-refereed goal needs a witness who has confirmed their address';
  end if;

  v_stake_cents := round(v_goal.monetary_stake * 100)::bigint;
  if v_stake_cents > 0 then
    insert into public.holding_cells (user_id) values (v_goal.user_id) on conflict (user_id) do nothing;
    perform 1 from public.holding_cells where user_id = v_goal.user_id for update;
    if (select available_cents from public.holding_cells where user_id = v_goal.user_id) < v_stake_cents then
      raise exception using errcode = '23514',
        message = 'the available balance is less than the stake; deposit more before activating';
    end if;
    perform app.ledger_post(v_goal.user_id, 'stake_reserved', v_stake_cents, -v_stake_cents, v_stake_cents, 0,
      'reserve:' || p_goal_id, p_goal_id);
  end if;

  select coalesce(max(cp.order_position), 0) + 1 into v_next_position
  from public.checkpoints cp where cp.goal_id = p_goal_id;

  insert into public.checkpoints (goal_id, title, deadline, order_position, is_final, requirements)
  values (p_goal_id, 'Final deadline', v_goal.final_deadline, v_next_position, true, v_goal.grading_rubric);

  update public.goals set status = 'active', activated_at = now()
  where id = p_goal_id
  returning * into v_goal;

  perform app.audit('goal', p_goal_id, 'activated', v_goal.user_id,
    jsonb_build_object('stake_cents', v_stake_cents));
  return v_goal;
end
$$;

-- Grading, now releasing the rest of the stake when the final checkpoint passes.
create or replace function app.record_grade(
  p_submission_id uuid,
  p_status public.submission_status,
  p_result jsonb default null,
  p_human_verdict public.verdict_enum default null,
  p_force boolean default false
) returns public.submissions
language plpgsql security definer
set search_path = ''
as $$
declare
  v_sub public.submissions;
  v_cp public.checkpoints;
begin
  select * into v_sub from public.submissions where id = p_submission_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = 'submission not found';
  end if;
  if v_sub.status in ('passed', 'failed') and not p_force then
    raise exception using errcode = '55000', message = 'submission is already graded: ' || v_sub.status;
  end if;

  update public.submissions
  set status = p_status,
      ai_analysis_result = coalesce(p_result, ai_analysis_result),
      human_verdict = coalesce(p_human_verdict, human_verdict),
      graded_at = case when p_status in ('passed', 'failed', 'needs_review') then now() else graded_at end
  where id = p_submission_id
  returning * into v_sub;

  select * into v_cp from public.checkpoints where id = v_sub.checkpoint_id for update;
  if p_status = 'passed' and v_sub.submitted_at <= v_cp.deadline and v_cp.status = 'pending' then
    update public.checkpoints set status = 'completed', completed_at = now() where id = v_cp.id;
    perform app.audit('checkpoint', v_cp.id, 'completed', v_sub.user_id,
      jsonb_build_object('submission_id', v_sub.id));
    if v_cp.is_final then
      update public.goals set status = 'completed', closed_at = now()
      where id = v_cp.goal_id and status = 'active';
      if found then
        perform app.release_stake(v_cp.goal_id);
        perform app.audit('goal', v_cp.goal_id, 'completed', v_sub.user_id, '{}'::jsonb);
      end if;
    end if;
  end if;

  perform app.audit('submission', v_sub.id, 'graded', v_sub.user_id,
    jsonb_build_object('status', p_status, 'forced', p_force));
  return v_sub;
end
$$;

-- Starts a withdrawal: debits available now and plans one refund per deposit,
-- oldest first. The same key returns the same withdrawal.
create function app.begin_withdrawal(p_user_id uuid, p_amount_cents bigint, p_idempotency_key text)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_id uuid;
  v_left bigint := p_amount_cents;
  v_take bigint;
  v_deposit record;
  v_position integer := 0;
begin
  select w.id into v_id from public.withdrawals w
  where w.user_id = p_user_id and w.idempotency_key = p_idempotency_key;
  if v_id is not null then
    return v_id;
  end if;
  insert into public.holding_cells (user_id) values (p_user_id) on conflict (user_id) do nothing;
  perform 1 from public.holding_cells where user_id = p_user_id for update;
  if (select available_cents from public.holding_cells where user_id = p_user_id) < p_amount_cents then
    raise exception using errcode = '23514', message = 'the amount is more than your available balance';
  end if;

  insert into public.withdrawals (user_id, amount_cents, idempotency_key)
  values (p_user_id, p_amount_cents, p_idempotency_key) returning id into v_id;

  for v_deposit in
    select le.stripe_object_id as intent,
           le.amount_cents - coalesce((select sum(wr.amount_cents) from public.withdrawal_refunds wr
                                       where wr.payment_intent_id = le.stripe_object_id
                                         and wr.status <> 'failed' and wr.status <> 'canceled'), 0)
                          - coalesce((select sum(r.amount_cents) from public.ledger_entries r
                                       where r.entry_type = 'refund'
                                         and r.stripe_object_id = le.stripe_object_id), 0) as refundable
    from public.ledger_entries le
    where le.user_id = p_user_id and le.entry_type = 'deposit'
    order by le.id
  loop
    exit when v_left = 0;
    continue when v_deposit.refundable <= 0;
    v_take := least(v_left, v_deposit.refundable);
    v_position := v_position + 1;
    insert into public.withdrawal_refunds (withdrawal_id, user_id, payment_intent_id, position, amount_cents)
    values (v_id, p_user_id, v_deposit.intent, v_position, v_take);
    v_left := v_left - v_take;
  end loop;
  if v_left > 0 then
    raise exception using errcode = '23514', message = 'not enough refundable card payments for this amount';
  end if;

  perform app.ledger_post(p_user_id, 'withdrawal', p_amount_cents, -p_amount_cents, 0, 0,
    'withdrawal:' || v_id);
  return v_id;
end
$$;

-- Moves a withdrawal's refund forward (never back). A failed or canceled
-- refund returns its amount to available, once.
create function app.record_refund(
  p_refund_row_id uuid, p_status public.refund_status, p_stripe_refund_id text default null,
  p_error text default null
) returns public.withdrawal_refunds
language plpgsql security definer
set search_path = ''
as $$
declare
  v_row public.withdrawal_refunds;
  v_rank_old int;
  v_rank_new int;
begin
  select * into v_row from public.withdrawal_refunds where id = p_refund_row_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = 'refund not found';
  end if;
  v_rank_old := case v_row.status when 'planned' then 0 when 'pending' then 1 else 2 end;
  v_rank_new := case p_status when 'planned' then 0 when 'pending' then 1 else 2 end;
  if v_rank_new < v_rank_old or (v_rank_old = 2 and p_status <> v_row.status) then
    return v_row;  -- stale or out-of-order news changes nothing
  end if;
  update public.withdrawal_refunds
  set status = p_status,
      stripe_refund_id = coalesce(p_stripe_refund_id, stripe_refund_id),
      last_error = coalesce(p_error, last_error)
  where id = p_refund_row_id
  returning * into v_row;
  if p_status in ('failed', 'canceled') then
    perform app.ledger_post(v_row.user_id, 'withdrawal_reversed', v_row.amount_cents, v_row.amount_cents, 0, 0,
      'reversal:' || v_row.id, null, null, v_row.stripe_refund_id);
  end if;
  return v_row;
end
$$;

-- Records a refund made outside Threativator: it takes from available first,
-- then from reserve, so the totals stay true to the money Stripe holds.
create function app.record_external_refund(
  p_user_id uuid, p_amount_cents bigint, p_refund_id text, p_payment_intent_id text
) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_available bigint;
  v_from_available bigint;
begin
  insert into public.holding_cells (user_id) values (p_user_id) on conflict (user_id) do nothing;
  select available_cents into v_available from public.holding_cells where user_id = p_user_id for update;
  v_from_available := least(v_available, p_amount_cents);
  return app.ledger_post(p_user_id, 'refund', p_amount_cents, -v_from_available,
    -(p_amount_cents - v_from_available), 0, 'refund:' || p_refund_id, null, null, p_payment_intent_id);
end
$$;

-- Remembers a Stripe event; false when it was seen before.
create function app.record_stripe_event(p_id text, p_type text, p_object_id text) returns boolean
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.stripe_events (id, type, object_id) values (p_id, p_type, p_object_id)
  on conflict (id) do nothing;
  return found;
end
$$;

revoke all on all functions in schema app from public;
grant execute on function
  app.ledger_post(uuid, public.ledger_entry_type, bigint, bigint, bigint, bigint, text, uuid, uuid, text),
  app.credit_deposit(uuid, bigint, text),
  app.goal_reserved_cents(uuid),
  app.release_stake(uuid),
  app.begin_withdrawal(uuid, bigint, text),
  app.record_refund(uuid, public.refund_status, text, text),
  app.record_external_refund(uuid, bigint, text, text),
  app.record_stripe_event(text, text, text),
  app.audit(text, uuid, text, uuid, jsonb)
  to service_role;
