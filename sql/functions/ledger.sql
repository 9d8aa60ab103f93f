-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- The holding-cell ledger: postings, deposits, reservations, withdrawals, refunds, Stripe events.
-- Every function, trigger and grant here is this file's alone; numbered migrations hold tables,
-- types, indexes, RLS and policies.

-- -----------------------------------------------------------------------------
-- State functions
-- -----------------------------------------------------------------------------
-- Posts one ledger entry and moves the totals with it; a reference already
-- posted changes nothing and returns false. Totals that would go negative
-- raise check_violation, rolling the entry back with them.
-- The disputed bucket came later (migration 015): the old signature goes, the new one
-- takes the same arguments in the same order and one more, with a default.
drop function if exists app.ledger_post(uuid, public.ledger_entry_type, bigint, bigint, bigint, bigint, text, uuid, uuid, text);
create or replace function app.ledger_post(
  p_user_id uuid,
  p_type public.ledger_entry_type,
  p_amount_cents bigint,
  p_available_delta bigint,
  p_reserved_delta bigint,
  p_forfeited_delta bigint,
  p_reference text,
  p_goal_id uuid default null,
  p_consequence_id uuid default null,
  p_stripe_object_id text default null,
  p_disputed_delta bigint default 0
) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_id bigint;
begin
  insert into public.holding_cells (user_id) values (p_user_id) on conflict (user_id) do nothing;
  insert into public.ledger_entries (user_id, entry_type, amount_cents, available_delta, reserved_delta,
    forfeited_delta, reference, goal_id, consequence_id, stripe_object_id, disputed_delta)
  values (p_user_id, p_type, p_amount_cents, p_available_delta, p_reserved_delta, p_forfeited_delta,
    p_reference, p_goal_id, p_consequence_id, p_stripe_object_id, p_disputed_delta)
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
        disputed_cents = disputed_cents + p_disputed_delta,
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

-- Credits a succeeded card payment, once per PaymentIntent: the stake part to the user's
-- cell, a funding fee the user paid on top of it (FUNDING_FEE_PAYER=user) to the platform's
-- funding_fees account, and the whole charge as what Stripe moved in.
drop function if exists app.credit_deposit(uuid, bigint, text);
create or replace function app.credit_deposit(
  p_user_id uuid, p_amount_cents bigint, p_payment_intent_id text, p_funding_fee_cents bigint default 0
) returns boolean
language plpgsql security definer
set search_path = ''
as $$
begin
  if not app.ledger_post(p_user_id, 'deposit', p_amount_cents, p_amount_cents, 0, 0,
      'deposit:' || p_payment_intent_id, null, null, p_payment_intent_id) then
    return false;
  end if;
  perform app.stripe_moved('deposit:' || p_payment_intent_id, p_payment_intent_id, 'charge',
    p_amount_cents + p_funding_fee_cents, p_user_id);
  perform app.platform_post('funding_fees', p_funding_fee_cents, 'funding_fee:' || p_payment_intent_id,
    'the funding fee the user paid on top of the stake', p_payment_intent_id, p_user_id);
  return true;
end
$$;

-- The part of a goal's stake still held in reserve.
create or replace function app.goal_reserved_cents(p_goal_id uuid) returns bigint
language sql stable security definer
set search_path = ''
as $$
  select coalesce(sum(le.reserved_delta), 0)::bigint from public.ledger_entries le where le.goal_id = p_goal_id
$$;

-- What unfinished monetary consequences of a goal are still owed: earmarked, or
-- not yet claimed. Released stake never includes it.
create or replace function app.goal_owed_cents(p_goal_id uuid) returns bigint
language sql stable security definer
set search_path = ''
as $$
  select coalesce(sum(case when c.earmarked_cents > 0 then c.earmarked_cents
                           else (c.monetary_amount * 100)::bigint end), 0)::bigint
  from public.consequences c
  where c.goal_id = p_goal_id and c.consequence_type = 'monetary'
    and c.execution_status in ('held', 'pending', 'executing') and c.provider_reference is null
$$;

-- Releases what remains of a closed goal's stake back to available, less what
-- unfinished consequences are still owed. Called when the goal completes, and
-- again when a consequence it owed fails for good: each call releases only what
-- is left, under its own reference.
create or replace function app.release_stake(p_goal_id uuid) returns bigint
language plpgsql security definer
set search_path = ''
as $$
declare
  v_user uuid;
  v_remaining bigint;
  v_earlier integer;
begin
  select g.user_id into v_user from public.goals g where g.id = p_goal_id for update;
  perform 1 from public.holding_cells where user_id = v_user for update;
  v_remaining := app.goal_reserved_cents(p_goal_id) - app.goal_owed_cents(p_goal_id);
  if v_remaining > 0 then
    select count(*) into v_earlier from public.ledger_entries
    where goal_id = p_goal_id and entry_type = 'stake_released';
    perform app.ledger_post(v_user, 'stake_released', v_remaining, v_remaining, -v_remaining, 0,
      'release:' || p_goal_id || case when v_earlier > 0 then ':' || (v_earlier + 1) else '' end, p_goal_id);
  end if;
  return greatest(v_remaining, 0);
end
$$;

-- What open disputes hold of a goal's money: the amounts their holds took from its reserve.
create or replace function app.goal_disputed_cents(p_goal_id uuid) returns bigint
language sql stable security definer
set search_path = ''
as $$
  select coalesce(sum(le.amount_cents), 0)::bigint
  from public.ledger_entries le
  join public.disputes d on d.status = 'open' and le.reference like 'dispute:' || d.id || ':held%'
  where le.goal_id = p_goal_id and le.entry_type = 'dispute_held'
$$;

-- Where a dispute's hold came from, goal by goal (what came from available has no goal).
create or replace function private.dispute_goal_takings(p_dispute_id text)
returns table (goal_id uuid, cents bigint)
language sql stable
set search_path = ''
as $$
  select le.goal_id, sum(le.amount_cents)::bigint
  from public.ledger_entries le
  where le.reference like 'dispute:' || p_dispute_id || ':held%' and le.entry_type = 'dispute_held'
    and le.goal_id is not null
  group by le.goal_id
$$;

-- Money Stripe gives back for a dispute (p_cents in all) goes where it was taken from: back to a
-- goal's reserve while the goal is open, or as far as a closed goal's unfinished consequences are
-- still owed; only what no goal needs becomes available. p_from_disputed: the money was still
-- held (the disputed bucket shrinks), rather than withdrawn and now returned by Stripe.
create or replace function private.reinstate_dispute(
  p_dispute_id text, p_user_id uuid, p_payment_intent_id text, p_cents bigint, p_from_disputed boolean
) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_left bigint := p_cents;
  v_taking record;
  v_status public.goal_status;
  v_back bigint;
begin
  for v_taking in select * from private.dispute_goal_takings(p_dispute_id) t order by t.goal_id loop
    exit when v_left <= 0;
    select g.status into v_status from public.goals g where g.id = v_taking.goal_id for update;
    v_back := least(v_taking.cents, v_left);
    if v_status is distinct from 'active' then
      v_back := least(v_back, greatest(app.goal_owed_cents(v_taking.goal_id)
                                       - app.goal_reserved_cents(v_taking.goal_id), 0));
    end if;
    if v_back > 0 then
      perform app.ledger_post(p_user_id, 'dispute_reinstated', v_back, 0, v_back, 0,
        'dispute:' || p_dispute_id || ':won:goal:' || v_taking.goal_id, v_taking.goal_id, null,
        p_payment_intent_id, case when p_from_disputed then -v_back else 0 end);
      v_left := v_left - v_back;
    end if;
  end loop;
  if v_left > 0 then
    perform app.ledger_post(p_user_id, 'dispute_reinstated', v_left, v_left, 0, 0,
      'dispute:' || p_dispute_id || ':won', null, null, p_payment_intent_id,
      case when p_from_disputed then -v_left else 0 end);
  end if;
end
$$;

-- One step of a dispute's money, once per step (references are unique):
--   held: the amount leaves available first, then goals' reserves beyond what their unfinished
--         consequences are owed (newest goals first), and only then, with an operator item, money
--         those consequences are owed (never what is earmarked for a payout under way). What is
--         already paid out cannot be held: that part is audited as a dispute after payout.
--   lost: what is held is debited for good (Stripe withdrew the funds).
--   won:  what is held goes back where it came from; funds already withdrawn come back once.
-- Returns the cents moved by this step.
create or replace function private.dispute_step(
  p_dispute_id text, p_user_id uuid, p_payment_intent_id text, p_amount_cents bigint, p_step text
) returns bigint
language plpgsql security definer
set search_path = ''
as $$
declare
  v_available bigint;
  v_take bigint;
  v_left bigint := p_amount_cents;
  v_held bigint;
  v_lost bigint;
  v_owed_taken bigint := 0;
  v_owed_goals jsonb := '[]'::jsonb;
  v_taking record;
  v_withdrawn boolean;
  v_was_held boolean;
begin
  insert into public.holding_cells (user_id) values (p_user_id) on conflict (user_id) do nothing;
  select available_cents into v_available from public.holding_cells where user_id = p_user_id for update;
  select coalesce(sum(disputed_delta), 0) into v_held from public.ledger_entries
  where stripe_object_id = p_payment_intent_id and reference like 'dispute:' || p_dispute_id || '%';
  v_withdrawn := exists (select 1 from public.stripe_movements where reference = 'dispute:' || p_dispute_id || ':withdrawn');
  v_was_held := exists (select 1 from public.ledger_entries where reference like 'dispute:' || p_dispute_id || ':held%'
                        and stripe_object_id = p_payment_intent_id)
                or exists (select 1 from public.audit_log where entity = 'dispute' and action = 'dispute_after_payout'
                           and details ->> 'dispute_id' = p_dispute_id);
  if p_step = 'lost' and not v_withdrawn and not v_was_held then
    -- Funds withdrawn before the dispute's creation arrived: hold first, then lose.
    perform private.dispute_step(p_dispute_id, p_user_id, p_payment_intent_id, p_amount_cents, 'held');
    select coalesce(sum(disputed_delta), 0) into v_held from public.ledger_entries
    where stripe_object_id = p_payment_intent_id and reference like 'dispute:' || p_dispute_id || '%';
  end if;
  if p_step = 'held' then
    if v_was_held or v_withdrawn then
      return 0;
    end if;
    v_take := least(v_available, v_left);
    if v_take > 0 then
      perform app.ledger_post(p_user_id, 'dispute_held', v_take, -v_take, 0, 0,
        'dispute:' || p_dispute_id || ':held', null, null, p_payment_intent_id, v_take);
      v_left := v_left - v_take;
    end if;
    for v_taking in select * from private.reserved_takings(p_user_id, v_left, true) loop
      perform app.ledger_post(p_user_id, 'dispute_held', v_taking.cents, 0, -v_taking.cents, 0,
        'dispute:' || p_dispute_id || ':held:goal:' || v_taking.goal_id, v_taking.goal_id, null,
        p_payment_intent_id, v_taking.cents);
      v_left := v_left - v_taking.cents;
    end loop;
    -- Money unfinished consequences are owed: Stripe has it no longer, so the books must say so,
    -- but a person looks at it, and those consequences wait for the dispute (claim_consequence).
    for v_taking in select * from private.reserved_takings(p_user_id, v_left, false) loop
      perform app.ledger_post(p_user_id, 'dispute_held', v_taking.cents, 0, -v_taking.cents, 0,
        'dispute:' || p_dispute_id || ':held:owed:' || v_taking.goal_id, v_taking.goal_id, null,
        p_payment_intent_id, v_taking.cents);
      v_left := v_left - v_taking.cents;
      v_owed_taken := v_owed_taken + v_taking.cents;
      v_owed_goals := v_owed_goals || to_jsonb(v_taking.goal_id::text);
    end loop;
    if v_owed_taken > 0 then
      perform app.raise_money_item('dispute_takes_owed', p_dispute_id, v_owed_taken, p_user_id,
        jsonb_build_object('payment_intent', p_payment_intent_id, 'goals', v_owed_goals,
          'why', 'a card dispute took money that unfinished consequences are owed; they wait until it closes'));
    end if;
    if v_left > 0 then
      perform app.audit('dispute', null, 'dispute_after_payout', p_user_id, jsonb_build_object(
        'dispute_id', p_dispute_id, 'payment_intent', p_payment_intent_id, 'uncovered_cents', v_left));
    end if;
    return p_amount_cents - v_left;
  end if;
  if p_step = 'lost' then
    if v_withdrawn then
      return 0;  -- already debited
    end if;
    perform app.stripe_moved('dispute:' || p_dispute_id || ':withdrawn', p_dispute_id, 'dispute', -p_amount_cents,
      p_user_id);
    -- Stripe withdrew p_amount_cents: what is held pays for it, anything held beyond it is freed,
    -- and what no user held is the platform's loss.
    v_take := least(greatest(v_held, 0), p_amount_cents);
    if v_take > 0 then
      perform app.ledger_post(p_user_id, 'dispute_lost', v_take, 0, 0, 0,
        'dispute:' || p_dispute_id || ':lost', null, null, p_payment_intent_id, -v_take);
    end if;
    if v_held > v_take then
      perform app.ledger_post(p_user_id, 'dispute_reinstated', v_held - v_take, v_held - v_take, 0, 0,
        'dispute:' || p_dispute_id || ':freed', null, null, p_payment_intent_id, -(v_held - v_take));
    end if;
    perform app.book_platform_loss('dispute:' || p_dispute_id, p_dispute_id, p_amount_cents - v_take,
      'a charge-back of money the user no longer holds', p_user_id);
    return v_take;
  elsif p_step = 'won' then
    if v_held > 0 then
      perform private.reinstate_dispute(p_dispute_id, p_user_id, p_payment_intent_id, v_held, true);
    else
      -- The funds were withdrawn and now come back, once: what the user lost returns where it
      -- came from, what the platform lost returns to its loss account.
      -- Stripe returns what it withdrew (the amount of the withdrawal, whatever this event says).
      select coalesce(-sum(amount_cents), 0) into v_lost from public.stripe_movements
      where reference = 'dispute:' || p_dispute_id || ':withdrawn';
      if not v_withdrawn or not app.stripe_moved('dispute:' || p_dispute_id || ':reinstated', p_dispute_id,
          'dispute', v_lost, p_user_id) then
        return 0;  -- nothing withdrawn, or already returned
      end if;
      select coalesce(sum(amount_cents), 0) into v_held from public.ledger_entries
      where stripe_object_id = p_payment_intent_id and reference = 'dispute:' || p_dispute_id || ':lost';
      if v_held > 0 then
        perform private.reinstate_dispute(p_dispute_id, p_user_id, p_payment_intent_id, v_held, false);
      end if;
      select coalesce(-sum(amount_cents), 0) into v_lost from public.platform_entries
      where reference = 'loss:dispute:' || p_dispute_id;
      if v_lost > 0 then
        perform app.platform_post('platform_losses', v_lost, 'loss_reversed:dispute:' || p_dispute_id,
          'the charge-back was reversed and Stripe returned the money', p_dispute_id, p_user_id);
      end if;
      return v_held + v_lost;
    end if;
  else
    raise exception using errcode = '22023', message = 'unknown dispute step';
  end if;
  return v_held;
end
$$;

-- A dispute's event, once per step (see private.dispute_step), and its life: open from the first
-- event, closed when Stripe returns the funds (won) or closes it (p_closes: won, or lost). A user
-- who disputes a charge while committed (an active goal, an unfinished consequence) is an operator
-- item. When it closes, the consequences that waited for it are due again: a won dispute's money is
-- back where it was taken from; a lost one's is gone, and they run with what is left or fail with
-- the reason.
drop function if exists app.record_dispute(text, uuid, text, bigint, text);
create or replace function app.record_dispute(
  p_dispute_id text, p_user_id uuid, p_payment_intent_id text, p_amount_cents bigint, p_step text,
  p_closes boolean default false
) returns bigint
language plpgsql security definer
set search_path = ''
as $$
declare
  v_moved bigint;
  v_dispute public.disputes;
  v_outcome text := case when p_step = 'won' then 'won' when p_closes and p_step = 'lost' then 'lost' end;
begin
  insert into public.disputes (id, user_id, payment_intent_id, amount_cents)
  values (p_dispute_id, p_user_id, p_payment_intent_id, p_amount_cents)
  on conflict (id) do nothing
  returning * into v_dispute;
  if v_dispute.id is not null and private.user_is_committed(p_user_id) then
    perform app.raise_money_item('dispute_while_committed', p_dispute_id, p_amount_cents, p_user_id,
      jsonb_build_object('payment_intent', p_payment_intent_id,
        'why', 'the user disputed a card payment while an active goal or an unfinished consequence holds them'));
  end if;
  v_moved := private.dispute_step(p_dispute_id, p_user_id, p_payment_intent_id, p_amount_cents, p_step);
  if v_outcome is not null then
    update public.disputes set status = v_outcome, closed_at = coalesce(closed_at, now())
    where id = p_dispute_id and status <> v_outcome
    returning * into v_dispute;
    if found then
      update public.consequences c
      set next_attempt_at = now(),
          deferred_reason = case when v_outcome = 'won' then null
                                 else 'the card payment behind this money was charged back (dispute lost)' end
      where c.goal_id in (select t.goal_id from private.dispute_goal_takings(p_dispute_id) t)
        and c.consequence_type = 'monetary' and c.provider_reference is null
        and c.execution_status in ('held', 'pending', 'executing');
      perform app.audit('dispute', null, 'dispute_' || v_outcome, p_user_id,
        jsonb_build_object('dispute_id', p_dispute_id, 'amount_cents', p_amount_cents));
    end if;
  end if;
  return v_moved;
end
$$;

-- The goal's money rule, checked at commit: earmarked + forfeited never exceeds the
-- stake, and earmarked never exceeds what the goal still holds.
create or replace function private.check_goal_money() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_goal uuid := new.goal_id;
  v_stake bigint;
  v_earmarked bigint;
  v_forfeited bigint;
begin
  if v_goal is null then
    return null;
  end if;
  select (g.monetary_stake * 100)::bigint into v_stake from public.goals g where g.id = v_goal;
  select coalesce(sum(c.earmarked_cents), 0) into v_earmarked from public.consequences c where c.goal_id = v_goal;
  select coalesce(sum(le.forfeited_delta), 0) into v_forfeited from public.ledger_entries le where le.goal_id = v_goal;
  if v_earmarked + v_forfeited > coalesce(v_stake, 0) or v_earmarked > app.goal_reserved_cents(v_goal) then
    raise exception using errcode = '23514',
      message = 'the goal''s stake does not cover this amount',
      hint = 'Money for a goal is earmarked from what it still holds, and never past its stake.';
  end if;
  return null;
end
$$;

-- Starts a withdrawal: debits available now and plans one refund per deposit,
-- oldest first. The same key returns the same withdrawal.
create or replace function app.begin_withdrawal(p_user_id uuid, p_amount_cents bigint, p_idempotency_key text)
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
  v_existing_amount bigint;
  v_refund_row uuid;
begin
  -- The cell's lock first: concurrent requests with one key wait here, then find the first one's row.
  insert into public.holding_cells (user_id) values (p_user_id) on conflict (user_id) do nothing;
  perform 1 from public.holding_cells where user_id = p_user_id for update;
  select w.id, w.amount_cents into v_id, v_existing_amount from public.withdrawals w
  where w.user_id = p_user_id and w.idempotency_key = p_idempotency_key;
  if v_id is not null then
    if v_existing_amount <> p_amount_cents then
      raise exception using errcode = 'TI001',
        message = 'this idempotency key was already used for a different amount; use a new key';
    end if;
    return v_id;
  end if;
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
    values (v_id, p_user_id, v_deposit.intent, v_position, v_take) returning id into v_refund_row;
    -- Money promised back to the card has left the books; a refund that fails brings it back.
    perform app.stripe_moved('withdrawal_refund:' || v_refund_row, null, 'refund', -v_take, p_user_id);
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
-- refund returns its amount to available, once, and raises a refund_refused
-- money item for the operators.
create or replace function app.record_refund(
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
  -- A refund can fail after it succeeded (Stripe's refund.failed with a failure balance
  -- transaction): the one move back from a final state. Anything else older changes nothing.
  if (v_rank_new < v_rank_old or (v_rank_old = 2 and p_status <> v_row.status))
     and not (v_row.status = 'succeeded' and p_status = 'failed') then
    return v_row;
  end if;
  update public.withdrawal_refunds
  set status = p_status,
      stripe_refund_id = coalesce(p_stripe_refund_id, stripe_refund_id),
      last_error = coalesce(p_error, last_error)
  where id = p_refund_row_id
  returning * into v_row;
  update public.stripe_movements set source_id = v_row.stripe_refund_id
  where reference = 'withdrawal_refund:' || v_row.id and source_id is null and v_row.stripe_refund_id is not null;
  if p_status in ('failed', 'canceled') then
    if app.ledger_post(v_row.user_id, 'withdrawal_reversed', v_row.amount_cents, v_row.amount_cents, 0, 0,
        'reversal:' || v_row.id, null, null, v_row.stripe_refund_id) then
      perform app.stripe_moved('withdrawal_refund_back:' || v_row.id, v_row.stripe_refund_id, 'refund_failure',
        v_row.amount_cents, v_row.user_id);
      -- The money is the user's again, but it could not reach their card: a person looks at it.
      perform app.raise_money_item('refund_refused', 'withdrawal_refund:' || v_row.id, v_row.amount_cents,
        v_row.user_id, jsonb_build_object('withdrawal_id', v_row.withdrawal_id,
          'payment_intent_id', v_row.payment_intent_id, 'stripe_object', v_row.stripe_refund_id,
          'status', p_status, 'error', v_row.last_error));
    end if;
  end if;
  return v_row;
end
$$;

-- Records a refund made outside Threativator: it takes from available first,
-- then from reserve, so the totals stay true to the money Stripe holds.
-- Where money taken back from a user's reserved funds comes from: the newest goals first,
-- each never below what its unfinished consequences have earmarked. Locks those goals.
-- Returns (goal, cents) rows that add up to at most p_amount_cents.
-- p_spare_owed: also leave what unfinished consequences are owed (held, contested, pending), not
-- only what is earmarked.
drop function if exists private.reserved_takings(uuid, bigint);
create or replace function private.reserved_takings(p_user_id uuid, p_amount_cents bigint,
                                                    p_spare_owed boolean default false)
returns table (goal_id uuid, cents bigint)
language plpgsql security definer
set search_path = ''
as $$
declare
  v_left bigint := p_amount_cents;
  v_goal record;
begin
  for v_goal in
    select g.id, app.goal_reserved_cents(g.id) - case when p_spare_owed then app.goal_owed_cents(g.id) else coalesce((
             select sum(c.earmarked_cents) from public.consequences c where c.goal_id = g.id), 0) end as free
    from public.goals g
    where g.user_id = p_user_id and app.goal_reserved_cents(g.id) > 0
    order by g.activated_at desc nulls last, g.created_at desc
    for update of g
  loop
    exit when v_left <= 0;
    continue when v_goal.free <= 0;
    goal_id := v_goal.id;
    cents := least(v_left, v_goal.free);
    v_left := v_left - cents;
    return next;
  end loop;
end
$$;

create or replace function app.record_external_refund(
  p_user_id uuid, p_amount_cents bigint, p_refund_id text, p_payment_intent_id text
) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_available bigint;
  v_from_available bigint;
  v_left bigint;
  v_taking record;
begin
  insert into public.holding_cells (user_id) values (p_user_id) on conflict (user_id) do nothing;
  select available_cents into v_available from public.holding_cells where user_id = p_user_id for update;
  if exists (select 1 from public.stripe_movements
             where reference in ('refund:' || p_refund_id, 'refund_failed:' || p_refund_id)) then
    return false;  -- already booked, or it failed before its success arrived
  end if;
  perform app.stripe_moved('refund:' || p_refund_id, p_refund_id, 'refund', -p_amount_cents, p_user_id);
  v_from_available := least(v_available, p_amount_cents);
  v_left := p_amount_cents - v_from_available;
  if v_from_available > 0 then
    perform app.ledger_post(p_user_id, 'refund', v_from_available, -v_from_available, 0, 0,
      'refund:' || p_refund_id, null, null, p_payment_intent_id);
  end if;
  -- The rest came out of money a goal holds: its goal's reservation shrinks, so that every
  -- consequence sees the reduced amount before any transfer.
  for v_taking in select * from private.reserved_takings(p_user_id, v_left) loop
    perform app.ledger_post(p_user_id, 'refund', v_taking.cents, 0, -v_taking.cents, 0,
      'refund:' || p_refund_id || ':goal:' || v_taking.goal_id, v_taking.goal_id, null, p_payment_intent_id);
    v_left := v_left - v_taking.cents;
  end loop;
  -- What the user no longer holds (the stake went to charity) is the platform's loss: booked
  -- with its reason and put in front of the operators, never refused (Stripe already moved it).
  perform app.book_platform_loss('refund:' || p_refund_id, p_refund_id, v_left,
    'an outside refund of money the user no longer holds', p_user_id);
  return true;
end
$$;

-- Remembers a Stripe event; false when it was seen before.
create or replace function app.record_stripe_event(p_id text, p_type text, p_object_id text) returns boolean
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.stripe_events (id, type, object_id) values (p_id, p_type, p_object_id)
  on conflict (id) do nothing;
  return found;
end
$$;

grant execute on function
  app.ledger_post(uuid, public.ledger_entry_type, bigint, bigint, bigint, bigint, text, uuid, uuid, text, bigint),
  app.record_dispute(text, uuid, text, bigint, text, boolean),
  app.goal_disputed_cents(uuid),
  app.credit_deposit(uuid, bigint, text, bigint),
  app.goal_reserved_cents(uuid),
  app.release_stake(uuid),
  app.goal_owed_cents(uuid),
  app.begin_withdrawal(uuid, bigint, text),
  app.record_refund(uuid, public.refund_status, text, text),
  app.record_external_refund(uuid, bigint, text, text),
  app.record_stripe_event(text, text, text),
  app.audit(text, uuid, text, uuid, jsonb)
  to service_role;

-- Constraint triggers cannot be replaced in place: dropped and created again.
drop trigger if exists consequences_goal_money on public.consequences;
create constraint trigger consequences_goal_money
  after insert or update of earmarked_cents on public.consequences
  deferrable initially deferred
  for each row when (new.earmarked_cents > 0) execute function private.check_goal_money();
drop trigger if exists ledger_entries_goal_money on public.ledger_entries;
create constraint trigger ledger_entries_goal_money
  after insert on public.ledger_entries
  deferrable initially deferred
  for each row when (new.goal_id is not null and new.forfeited_delta <> 0) execute function private.check_goal_money();

revoke all on function private.check_goal_money() from public;
revoke all on function private.reserved_takings(uuid, bigint, boolean), private.dispute_goal_takings(text),
  private.reinstate_dispute(text, uuid, text, bigint, boolean),
  private.dispute_step(text, uuid, text, bigint, text) from public;
