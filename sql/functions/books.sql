-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- The books beyond users' holding cells (issue 18): what Stripe reported moving, the platform's
-- accounts, the operators' money items, and the state functions of the reverse transitions.

-- -----------------------------------------------------------------------------
-- Postings
-- -----------------------------------------------------------------------------
-- Records what Stripe moved in or out of the platform's balance, once per reference.
create or replace function app.stripe_moved(
  p_reference text, p_source_id text, p_kind text, p_amount_cents bigint, p_user_id uuid default null,
  p_fee_cents bigint default 0, p_balance_transaction_id text default null
) returns boolean
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.stripe_movements (reference, source_id, kind, amount_cents, fee_cents, balance_transaction_id,
    user_id)
  values (p_reference, p_source_id, p_kind, p_amount_cents, p_fee_cents, p_balance_transaction_id, p_user_id)
  on conflict (reference) do nothing;
  return found;
end
$$;

-- Posts to one of the platform's accounts, once per reference.
create or replace function app.platform_post(
  p_account public.platform_account, p_amount_cents bigint, p_reference text, p_reason text,
  p_stripe_object_id text default null, p_user_id uuid default null, p_goal_id uuid default null,
  p_consequence_id uuid default null
) returns boolean
language plpgsql security definer
set search_path = ''
as $$
begin
  if p_amount_cents = 0 then
    return false;
  end if;
  insert into public.platform_entries (account, amount_cents, reference, reason, stripe_object_id, user_id, goal_id,
    consequence_id)
  values (p_account, p_amount_cents, p_reference, p_reason, p_stripe_object_id, p_user_id, p_goal_id,
    p_consequence_id)
  on conflict (reference) do nothing;
  if found then
    perform app.audit('platform', null, p_account::text, p_user_id,
      jsonb_build_object('amount_cents', p_amount_cents, 'reference', p_reference, 'reason', p_reason));
  end if;
  return found;
end
$$;

-- Puts a money matter in front of the operators, once per kind and Stripe object.
create or replace function app.raise_money_item(
  p_kind public.money_item_kind, p_source_id text, p_cents bigint, p_user_id uuid default null,
  p_details jsonb default '{}'::jsonb, p_stripe_cents bigint default null, p_ledger_cents bigint default null
) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_id uuid;
begin
  insert into public.money_items (kind, source_id, cents, user_id, details, stripe_cents, ledger_cents)
  values (p_kind, p_source_id, p_cents, p_user_id, p_details, p_stripe_cents, p_ledger_cents)
  on conflict (kind, source_id) do nothing
  returning id into v_id;
  if v_id is not null then
    perform app.audit('money_item', v_id, p_kind::text, p_user_id,
      jsonb_build_object('source_id', p_source_id, 'cents', p_cents));
  end if;
  return v_id;
end
$$;

-- Money Stripe took back that no user still holds: the platform's loss, with its reason.
create or replace function app.book_platform_loss(
  p_reference text, p_source_id text, p_cents bigint, p_reason text, p_user_id uuid
) returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  if p_cents <= 0 then
    return;
  end if;
  if app.platform_post('platform_losses', -p_cents, 'loss:' || p_reference, p_reason, p_source_id, p_user_id) then
    perform app.raise_money_item('platform_loss', p_reference, p_cents, p_user_id,
      jsonb_build_object('reason', p_reason, 'stripe_object', p_source_id));
  end if;
end
$$;

-- -----------------------------------------------------------------------------
-- Reverse transitions
-- -----------------------------------------------------------------------------
-- An outside refund that failed after it succeeded: Stripe put the money back
-- (its failure_balance_transaction), so what was taken comes back once: the users'
-- part to available, the part booked as a loss back to the loss account. A failure
-- that arrives before its refund marks it, so the refund books nothing later.
create or replace function app.record_external_refund_failure(
  p_user_id uuid, p_refund_id text, p_payment_intent_id text
) returns bigint
language plpgsql security definer
set search_path = ''
as $$
declare
  v_taken bigint;
  v_lost bigint;
  v_moved bigint;
begin
  if p_user_id is not null then
    perform 1 from public.holding_cells where user_id = p_user_id for update;
  end if;
  select coalesce(-sum(amount_cents), 0) into v_moved from public.stripe_movements
  where reference = 'refund:' || p_refund_id;
  if v_moved = 0 then
    -- Not booked (yet): marked, so a late success books nothing. Stripe's net for it is zero.
    perform app.stripe_moved('refund_failed:' || p_refund_id, p_refund_id, 'refund_failure', 0, p_user_id);
    return 0;
  end if;
  if not app.stripe_moved('refund_failed:' || p_refund_id, p_refund_id, 'refund_failure', v_moved, p_user_id) then
    return 0;  -- already reversed
  end if;
  select coalesce(sum(amount_cents), 0) into v_taken from public.ledger_entries
  where entry_type = 'refund' and stripe_object_id = p_payment_intent_id
    and (reference = 'refund:' || p_refund_id or reference like 'refund:' || p_refund_id || ':goal:%');
  if v_taken > 0 then
    perform app.ledger_post(p_user_id, 'refund_reversed', v_taken, v_taken, 0, 0,
      'refund_failed:' || p_refund_id, null, null, p_payment_intent_id);
  end if;
  select coalesce(-sum(amount_cents), 0) into v_lost from public.platform_entries
  where reference = 'loss:refund:' || p_refund_id;
  if v_lost > 0 then
    perform app.platform_post('platform_losses', v_lost, 'loss_reversed:refund:' || p_refund_id,
      'the outside refund failed and Stripe returned the money', p_refund_id, p_user_id);
  end if;
  return v_moved;
end
$$;

-- A charity transfer reversed (all or part): Stripe has the money back, so the charity
-- has not received it. The goal's forfeit shrinks by it (money sent to charity always
-- equals the ledger) and it is owed to the charity again, for an operator to resend.
create or replace function app.record_transfer_reversal(
  p_reversal_id text, p_transfer_id text, p_amount_cents bigint
) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_c public.consequences;
  v_forfeited bigint;
  v_back bigint;
begin
  if p_amount_cents <= 0 then
    return false;
  end if;
  select * into v_c from public.consequences where provider_reference = p_transfer_id for update;
  if not app.stripe_moved('transfer_reversal:' || p_reversal_id, p_reversal_id, 'transfer_reversal',
                          p_amount_cents, v_c.user_id) then
    return false;  -- already booked
  end if;
  if v_c.id is not null then
    select coalesce(sum(forfeited_delta), 0) into v_forfeited from public.ledger_entries
    where consequence_id = v_c.id;
    v_back := least(p_amount_cents, v_forfeited);
    if v_back > 0 then
      perform app.ledger_post(v_c.user_id, 'transfer_reversed', v_back, 0, 0, -v_back,
        'transfer_reversal:' || p_reversal_id, v_c.goal_id, v_c.id, p_transfer_id);
    end if;
  end if;
  perform app.platform_post('charity_payable', p_amount_cents, 'charity_payable:' || p_reversal_id,
    'a charity transfer was reversed; the money is owed to the charity again', p_transfer_id, v_c.user_id,
    v_c.goal_id, v_c.id);
  perform app.raise_money_item('transfer_reversed', p_reversal_id, p_amount_cents, v_c.user_id,
    jsonb_build_object('transfer_id', p_transfer_id, 'consequence_id', v_c.id));
  return true;
end
$$;

-- What Stripe kept of a movement, read from its balance transaction: booked once.
create or replace function app.book_stripe_fee(
  p_balance_transaction_id text, p_source_id text, p_fee_cents bigint
) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_user uuid;
begin
  if p_fee_cents <= 0 then
    return false;
  end if;
  select user_id into v_user from public.stripe_movements where source_id = p_source_id and user_id is not null
  limit 1;
  if not app.stripe_moved('fee:' || p_balance_transaction_id, p_source_id, 'fee', 0, v_user, p_fee_cents,
                          p_balance_transaction_id) then
    return false;
  end if;
  perform app.platform_post('stripe_fees', -p_fee_cents, 'fee:' || p_balance_transaction_id,
    'Stripe''s fee', p_source_id, v_user);
  return true;
end
$$;

-- The platform's own money paid out to its bank.
create or replace function app.book_payout(p_balance_transaction_id text, p_payout_id text, p_amount_cents bigint)
returns boolean
language plpgsql security definer
set search_path = ''
as $$
begin
  if not app.stripe_moved('payout:' || p_balance_transaction_id, p_payout_id, 'payout', p_amount_cents, null, 0,
                          p_balance_transaction_id) then
    return false;
  end if;
  perform app.platform_post('payouts', p_amount_cents, 'payout:' || p_balance_transaction_id,
    'a payout to the platform''s bank account', p_payout_id);
  return true;
end
$$;

-- -----------------------------------------------------------------------------
-- The books
-- -----------------------------------------------------------------------------
-- Each account and what it holds: users' cells, each platform account, and what Stripe
-- holds (movements less fees). Balanced when stripe = users + the platform accounts.
create or replace function app.books() returns table (account text, cents bigint)
language sql stable security definer
set search_path = ''
as $$
  select 'stripe', coalesce(sum(amount_cents - fee_cents), 0)::bigint from public.stripe_movements
  union all
  select 'users', coalesce(sum(available_cents + reserved_cents + disputed_cents), 0)::bigint
  from public.holding_cells
  union all
  select a::text, coalesce((select sum(pe.amount_cents) from public.platform_entries pe where pe.account = a), 0)::bigint
  from unnest(enum_range(null::public.platform_account)) a
$$;

-- Stripe's balance less users' cells less the platform accounts: zero when the books balance.
create or replace function app.books_difference() returns bigint
language sql stable security definer
set search_path = ''
as $$
  select coalesce(sum(case when b.account = 'stripe' then b.cents else -b.cents end), 0)::bigint from app.books() b
$$;

grant execute on function
  app.stripe_moved(text, text, text, bigint, uuid, bigint, text),
  app.platform_post(public.platform_account, bigint, text, text, text, uuid, uuid, uuid),
  app.raise_money_item(public.money_item_kind, text, bigint, uuid, jsonb, bigint, bigint),
  app.book_platform_loss(text, text, bigint, text, uuid),
  app.record_external_refund_failure(uuid, text, text),
  app.record_transfer_reversal(text, text, bigint),
  app.book_stripe_fee(text, text, bigint),
  app.book_payout(text, text, bigint),
  app.books(),
  app.books_difference()
  to service_role;

-- An operator closes a money item once, with a reason, audited with their id.
-- An operator closes a money item, once, audited, by one of the actions open to its kind:
--   note: what they did elsewhere (any kind);
--   retry_refund (refund_refused): a new withdrawal of the item's amount from the user's available
--     balance, refunded under new idempotency keys (the caller sends it: details.withdrawal_id);
--   book_outside_payment (refund_refused): the operator paid the user outside Stripe;
--   write_off (a reconciliation difference, not a fee's): the books take Stripe's figure and the
--     difference goes to platform_losses, so the next reconciliation finds the two agreeing.
-- Nobody resolves their own item.
drop function if exists app.resolve_money_item(uuid, uuid, text);
create or replace function app.resolve_money_item(p_id uuid, p_operator uuid, p_reason text,
                                                  p_action text default 'note')
returns public.money_items
language plpgsql security definer
set search_path = ''
as $$
declare
  v_item public.money_items;
  v_delta bigint;
  v_withdrawal uuid;
begin
  select * into v_item from public.money_items where id = p_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = 'no such money item';
  end if;
  if v_item.user_id = p_operator then
    raise exception using errcode = '42501', message = 'an operator cannot decide their own case';
  end if;
  if v_item.resolved_at is not null then
    raise exception using errcode = '55000', message = 'this money item was already resolved';
  end if;
  if not (p_action = any (app.money_item_actions(v_item.kind, v_item.source_id))) then
    raise exception using errcode = '22023',
      message = p_action || ' is not an action for a ' || replace(v_item.kind::text, '_', ' ') || ' item';
  end if;
  if p_action in ('retry_refund', 'book_outside_payment') and (v_item.user_id is null or coalesce(v_item.cents, 0) <= 0)
  then
    raise exception using errcode = '55000', message = 'this item names no user and amount to pay';
  end if;
  if p_action = 'retry_refund' then
    v_withdrawal := app.begin_withdrawal(v_item.user_id, v_item.cents, 'retry:' || p_id);
    v_item.details := v_item.details || jsonb_build_object('withdrawal_id', v_withdrawal);
  elsif p_action = 'book_outside_payment' then
    perform app.ledger_post(v_item.user_id, 'paid_outside', v_item.cents, -v_item.cents, 0, 0,
      'paid_outside:' || p_id, null, null, v_item.source_id);
    perform app.platform_post('outside_payments', v_item.cents, 'paid_outside:' || p_id,
      'paid to the user outside Stripe by an operator; Stripe still holds it', v_item.source_id, v_item.user_id);
  elsif p_action = 'write_off' then
    v_delta := coalesce(v_item.stripe_cents, 0) - coalesce(v_item.ledger_cents, 0);
    if v_delta <> 0 then
      perform app.stripe_moved('write_off:' || p_id, v_item.source_id, 'write_off', v_delta, v_item.user_id);
      perform app.platform_post('platform_losses', v_delta, 'write_off:' || p_id,
        'a reconciliation difference written off by an operator', v_item.source_id, v_item.user_id);
    end if;
  end if;
  update public.money_items
  set resolved_at = now(), resolved_by = p_operator, resolution = p_reason,
      details = v_item.details || jsonb_build_object('action', p_action)
  where id = p_id returning * into v_item;
  perform app.audit('money_item', p_id, 'resolved', v_item.user_id,
    jsonb_build_object('operator', p_operator, 'reason', p_reason, 'kind', v_item.kind, 'action', p_action));
  return v_item;
end
$$;

-- The actions open to a money item of this kind (operator_review shows them; resolve takes one).
create or replace function app.money_item_actions(p_kind public.money_item_kind, p_source_id text)
returns text[]
language sql immutable
set search_path = ''
as $$
  select case
    when p_kind = 'refund_refused' then array['note', 'retry_refund', 'book_outside_payment']
    when p_kind in ('missing_in_ledger', 'missing_at_stripe', 'unknown_transaction')
      or (p_kind = 'amount_differs' and p_source_id not like 'fee:%') then array['note', 'write_off']
    else array['note']
  end
$$;

revoke all on function app.resolve_money_item(uuid, uuid, text, text), app.money_item_actions(public.money_item_kind, text)
  from public;
grant execute on function app.resolve_money_item(uuid, uuid, text, text), app.money_item_actions(public.money_item_kind, text)
  to service_role;
