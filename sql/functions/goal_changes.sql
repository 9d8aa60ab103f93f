-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- The akrasia horizon (issue 15): change_goal's state functions. Easing changes wait out the
-- notice period and never touch a deadline inside it; tightening changes apply at once.

-- A refusal that names the deadline inside the horizon (409 through the HTTP layer).
create or replace function private.refuse_inside_horizon(p_what text, p_deadline timestamptz, p_horizon timestamptz)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = '55000',
    message = p_what || ' is due at ' || to_char(p_deadline at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
      || ', inside the notice period: it stays due. A change requested now takes effect at '
      || to_char(p_horizon at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
      || ', so only deadlines after that can be eased.';
end
$$;

create or replace function private.goal_checkpoint(p_goal_id uuid, p_change jsonb) returns public.checkpoints
language plpgsql
set search_path = ''
as $$
declare
  v_cp public.checkpoints;
begin
  begin
    select * into v_cp from public.checkpoints
    where id = (p_change ->> 'checkpoint_id')::uuid and goal_id = p_goal_id for update;
  exception when invalid_text_representation then
    raise exception using errcode = '22023', message = 'checkpoint_id is not a valid id';
  end;
  if v_cp.id is null then
    raise exception using errcode = 'P0002', message = 'no such checkpoint on this goal';
  end if;
  if v_cp.status <> 'pending' then
    raise exception using errcode = '55000', message = 'this checkpoint is already ' || v_cp.status::text;
  end if;
  return v_cp;
end
$$;

-- Checks a request and records it: an easing one waits until now + p_notice; a tightening one
-- is applied in this transaction. The goal is locked first, so concurrent requests, the
-- scheduler's application and detection of the goal's deadlines go one at a time.
drop function if exists app.request_goal_change(uuid, uuid, public.goal_change_type, jsonb, interval);
create or replace function app.request_goal_change(
  p_goal_id uuid, p_user_id uuid, p_type public.goal_change_type, p_change jsonb, p_notice interval,
  -- MAX_CHECKPOINTS_PER_GOAL: checkpoints besides the final deadline.
  p_max_checkpoints integer default 52
) returns public.goal_change_requests
language plpgsql security definer
set search_path = ''
as $$
declare
  v_goal public.goals;
  v_cp public.checkpoints;
  v_horizon timestamptz := now() + p_notice;
  v_easing boolean := p_type in ('pause', 'extend_deadline', 'lower_stake', 'remove_checkpoint', 'cancel_goal');
  v_request public.goal_change_requests;
  v_from timestamptz;
  v_until timestamptz;
  v_when timestamptz;
  v_cents bigint;
  v_first_after timestamptz;
begin
  select * into v_goal from public.goals where id = p_goal_id for update;
  if not found or v_goal.user_id <> p_user_id then
    raise exception using errcode = 'P0002', message = 'no such goal';
  end if;
  if v_goal.status <> 'active' then
    raise exception using errcode = '55000', message = 'only an active goal changes through change_goal; this one is '
      || v_goal.status::text;
  end if;
  if v_easing and exists (select 1 from public.goal_change_requests r where r.goal_id = p_goal_id
                          and r.status = 'pending') then
    raise exception using errcode = '55000',
      message = 'another change to this goal is waiting for its notice period; withdraw it first';
  end if;
  select min(cp.deadline) into v_first_after from public.checkpoints cp
  where cp.goal_id = p_goal_id and cp.status = 'pending' and cp.deadline >= v_horizon;

  if p_type = 'pause' then
    v_from := (p_change ->> 'from')::timestamptz;
    v_until := (p_change ->> 'until')::timestamptz;
    if v_until <= v_from or v_until - v_from > interval '90 days' then
      raise exception using errcode = '22023', message = 'a pause ends after it starts and lasts at most 90 days';
    end if;
    if v_from < v_horizon then
      raise exception using errcode = '55000',
        message = 'a pause requested now can start at '
          || to_char(v_horizon at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
          || ' at the earliest: what is due within the notice period stays due';
    end if;
    if not exists (select 1 from public.checkpoints cp where cp.goal_id = p_goal_id and cp.status = 'pending'
                   and cp.deadline >= v_from) then
      raise exception using errcode = '55000', message = 'no deadline of this goal falls in or after this pause';
    end if;
  elsif p_type in ('extend_deadline', 'earlier_deadline') then
    v_cp := private.goal_checkpoint(p_goal_id, p_change);
    v_when := (p_change ->> 'new_deadline')::timestamptz;
    if p_type = 'extend_deadline' then
      if v_when <= v_cp.deadline or v_when > v_cp.deadline + interval '365 days' then
        raise exception using errcode = '22023',
          message = 'new_deadline must be later than the current deadline, by at most a year';
      end if;
      if v_cp.deadline < v_horizon then
        perform private.refuse_inside_horizon('The deadline "' || v_cp.title || '"', v_cp.deadline, v_horizon);
      end if;
    else
      if v_when >= v_cp.deadline or v_when <= now() then
        raise exception using errcode = '22023',
          message = 'new_deadline must be earlier than the current deadline and in the future';
      end if;
    end if;
    -- Checkpoints keep their order, and none lies after the final deadline.
    if exists (select 1 from public.checkpoints cp where cp.goal_id = p_goal_id and cp.id <> v_cp.id and (
                 (cp.order_position < v_cp.order_position and cp.deadline >= v_when)
                 or (cp.order_position > v_cp.order_position and cp.deadline <= v_when))) then
      raise exception using errcode = '22023', message = 'new_deadline would put this checkpoint out of order';
    end if;
  elsif p_type in ('lower_stake', 'raise_stake') then
    v_cents := (p_change ->> 'new_amount_cents')::bigint;
    if p_type = 'lower_stake' and (v_cents < 0 or v_cents >= (v_goal.monetary_stake * 100)::bigint) then
      raise exception using errcode = '22023', message = 'new_amount_cents must be below the current stake';
    end if;
    if p_type = 'raise_stake' and (v_cents <= (v_goal.monetary_stake * 100)::bigint or v_cents > 100000000) then
      raise exception using errcode = '22023', message = 'new_amount_cents must be above the current stake';
    end if;
    if p_type = 'lower_stake' and v_first_after is null then
      select min(cp.deadline) into v_when from public.checkpoints cp
      where cp.goal_id = p_goal_id and cp.status = 'pending';
      perform private.refuse_inside_horizon('Every remaining deadline, the first', v_when, v_horizon);
    end if;
  elsif p_type = 'remove_checkpoint' then
    v_cp := private.goal_checkpoint(p_goal_id, p_change);
    if v_cp.is_final then
      raise exception using errcode = '22023', message = 'the final deadline cannot be removed; cancel the goal instead';
    end if;
    if v_cp.deadline < v_horizon then
      perform private.refuse_inside_horizon('The checkpoint "' || v_cp.title || '"', v_cp.deadline, v_horizon);
    end if;
  elsif p_type = 'cancel_goal' then
    if v_goal.final_deadline < v_horizon then
      perform private.refuse_inside_horizon('The final deadline', v_goal.final_deadline, v_horizon);
    end if;
  elsif p_type = 'add_checkpoint' then
    v_when := (p_change ->> 'deadline')::timestamptz;
    if v_when <= now() or v_when >= v_goal.final_deadline then
      raise exception using errcode = '22023',
        message = 'a new checkpoint''s deadline lies in the future and before the final deadline';
    end if;
    if exists (select 1 from public.checkpoints cp where cp.goal_id = p_goal_id and cp.deadline = v_when) then
      raise exception using errcode = '22023', message = 'another checkpoint is due at that moment';
    end if;
    if (select count(*) from public.checkpoints cp where cp.goal_id = p_goal_id and not cp.is_final)
       >= p_max_checkpoints then
      raise exception using errcode = '55000',
        message = 'this goal already has ' || p_max_checkpoints
          || ' checkpoints besides its final deadline, the most a goal can have';
    end if;
  end if;

  insert into public.goal_change_requests (goal_id, user_id, change_type, change, effective_at)
  values (p_goal_id, p_user_id, p_type, p_change, case when v_easing then v_horizon else now() end)
  returning * into v_request;
  perform app.audit('goal', p_goal_id, 'change_requested', p_user_id,
    jsonb_build_object('request_id', v_request.id, 'type', p_type, 'effective_at', v_request.effective_at));
  if v_easing then
    perform app.queue_notification('goal_changed', p_user_id, v_request.id,
      jsonb_build_object('request_id', v_request.id, 'outcome', 'scheduled'), null,
      'goal_changed:scheduled:' || v_request.id);
    return v_request;
  end if;
  return private.apply_goal_change(v_request.id);
end
$$;

-- The final deadline's part of the stake is what the goal's checkpoints leave of it (never below
-- zero: the final deadline takes whatever the goal still holds when it falls, whatever its part).
create or replace function private.settle_final_part(p_goal_id uuid) returns void
language sql
set search_path = ''
as $$
  update public.checkpoints f
  set stake_cents = greatest(0, round(g.monetary_stake * 100)::bigint - coalesce((
        select sum(cp.stake_cents) from public.checkpoints cp where cp.goal_id = p_goal_id and not cp.is_final), 0))
  from public.goals g
  where f.goal_id = p_goal_id and f.is_final and g.id = p_goal_id
$$;

-- Carries out one request with its goal locked. What no longer applies (the goal closed, the
-- deadline passed or was missed) lapses instead: a change never reaches back past a deadline.
create or replace function private.apply_goal_change(p_request_id uuid) returns public.goal_change_requests
language plpgsql security definer
set search_path = ''
as $$
declare
  v_request public.goal_change_requests;
  v_goal public.goals;
  v_cp public.checkpoints;
  v_outcome jsonb := '{}'::jsonb;
  v_lapse text;
  v_len interval;
  v_from timestamptz;
  v_when timestamptz;
  v_cents bigint;
  v_stake bigint;
  v_forfeited bigint;
  v_owed bigint;
  v_reserved bigint;
  v_moved integer;
  v_available bigint;
  v_at timestamptz;
  v_fixed bigint;
  v_ahead bigint;
begin
  select * into v_request from public.goal_change_requests where id = p_request_id for update;
  -- What "has passed" means for this change: its effective time, not the moment a pass got to it.
  v_at := least(v_request.effective_at, now());
  select * into v_goal from public.goals where id = v_request.goal_id for update;
  v_stake := (v_goal.monetary_stake * 100)::bigint;
  if v_goal.status <> 'active' then
    v_lapse := 'the goal is ' || v_goal.status::text;
  elsif v_request.change_type = 'pause' then
    v_from := greatest((v_request.change ->> 'from')::timestamptz, v_at);
    v_len := (v_request.change ->> 'until')::timestamptz - (v_request.change ->> 'from')::timestamptz;
    -- Every deadline from the pause's start on moves by its length (so checkpoints keep their
    -- order); a deadline that has passed is never moved.
    update public.goals set final_deadline = final_deadline + v_len
    where id = v_goal.id and final_deadline >= v_from;
    update public.checkpoints set deadline = deadline + v_len
    where goal_id = v_goal.id and status = 'pending' and deadline >= v_from;
    get diagnostics v_moved = row_count;
    if v_moved = 0 then
      v_lapse := 'no deadline was left to move';
    end if;
    v_outcome := jsonb_build_object('deadlines_moved', v_moved, 'by_seconds', extract(epoch from v_len)::bigint);
  elsif v_request.change_type in ('extend_deadline', 'earlier_deadline') then
    v_when := (v_request.change ->> 'new_deadline')::timestamptz;
    select * into v_cp from public.checkpoints where id = (v_request.change ->> 'checkpoint_id')::uuid for update;
    if v_cp.status <> 'pending' or v_cp.deadline <= v_at or v_when <= v_at then
      v_lapse := 'the deadline has passed';
    else
      if v_cp.is_final and v_when > v_cp.deadline then
        update public.goals set final_deadline = v_when where id = v_goal.id;
      end if;
      update public.checkpoints set deadline = v_when where id = v_cp.id;
      if v_cp.is_final and v_when < v_cp.deadline then
        update public.goals set final_deadline = v_when where id = v_goal.id;
      end if;
      v_outcome := jsonb_build_object('checkpoint_id', v_cp.id, 'from', v_cp.deadline, 'to', v_when);
    end if;
  elsif v_request.change_type = 'lower_stake' then
    -- Never below what the goal already forfeited plus what unfinished consequences are owed.
    select coalesce(sum(forfeited_delta), 0) into v_forfeited from public.ledger_entries where goal_id = v_goal.id;
    v_owed := app.goal_owed_cents(v_goal.id);
    v_cents := greatest((v_request.change ->> 'new_amount_cents')::bigint, v_forfeited + v_owed);
    update public.goals set monetary_stake = v_cents / 100.0 where id = v_goal.id;
    -- The deadlines still ahead shrink in proportion; the final deadline's part is what is left.
    select coalesce(sum(stake_cents) filter (where not is_final and status <> 'pending'), 0),
           coalesce(sum(stake_cents) filter (where is_final or status = 'pending'), 0)
      into v_fixed, v_ahead
    from public.checkpoints where goal_id = v_goal.id;
    update public.checkpoints
    set stake_cents = case when v_ahead > 0 then stake_cents * greatest(v_cents - v_fixed, 0) / v_ahead else 0 end
    where goal_id = v_goal.id and not is_final and status = 'pending';
    perform private.settle_final_part(v_goal.id);
    perform 1 from public.holding_cells where user_id = v_goal.user_id for update;
    v_reserved := app.goal_reserved_cents(v_goal.id) - greatest(v_cents - v_forfeited, v_owed);
    if v_reserved > 0 then
      perform app.ledger_post(v_goal.user_id, 'stake_released', v_reserved, v_reserved, -v_reserved, 0,
        'lower_stake:' || v_request.id, v_goal.id);
    end if;
    v_outcome := jsonb_build_object('stake_cents', v_cents, 'released_cents', greatest(v_reserved, 0));
  elsif v_request.change_type = 'raise_stake' then
    v_cents := (v_request.change ->> 'new_amount_cents')::bigint;
    insert into public.holding_cells (user_id) values (v_goal.user_id) on conflict (user_id) do nothing;
    select available_cents into v_available from public.holding_cells where user_id = v_goal.user_id for update;
    if v_available < v_cents - v_stake then
      raise exception using errcode = 'TI004',
        message = 'the holding cell has ' || v_available || ' cents available; raising the stake needs '
          || (v_cents - v_stake);
    end if;
    perform app.ledger_post(v_goal.user_id, 'stake_reserved', v_cents - v_stake, -(v_cents - v_stake),
      v_cents - v_stake, 0, 'raise_stake:' || v_request.id, v_goal.id);
    update public.goals set monetary_stake = v_cents / 100.0 where id = v_goal.id;
    -- What is added goes to the final deadline's part: no checkpoint's part is lowered.
    perform private.settle_final_part(v_goal.id);
    v_outcome := jsonb_build_object('stake_cents', v_cents, 'reserved_cents', v_cents - v_stake);
  elsif v_request.change_type = 'remove_checkpoint' then
    delete from public.checkpoints
    where id = (v_request.change ->> 'checkpoint_id')::uuid and status = 'pending' and deadline > v_at;
    if not found then
      v_lapse := 'the checkpoint is no longer pending';
    end if;
    -- Its part goes back to the final deadline's.
    perform private.settle_final_part(v_goal.id);
    v_outcome := jsonb_build_object('checkpoint_id', v_request.change ->> 'checkpoint_id');
  elsif v_request.change_type = 'add_checkpoint' then
    v_when := (v_request.change ->> 'deadline')::timestamptz;
    -- Its part comes out of the final deadline's, never out of another checkpoint's: an even share
    -- of the stake, or whatever the final deadline still has if that is less.
    select count(*) filter (where not is_final) + 2, coalesce(sum(stake_cents) filter (where is_final), 0)
      into v_moved, v_ahead
    from public.checkpoints where goal_id = v_goal.id;
    v_cents := least(v_stake / v_moved, v_ahead);
    update public.checkpoints set order_position = order_position + 100000 where goal_id = v_goal.id;
    insert into public.checkpoints (goal_id, title, deadline, order_position, requirements, stake_cents)
    values (v_goal.id, v_request.change ->> 'title', v_when, 200001, v_request.change ->> 'requirements', v_cents)
    returning * into v_cp;
    perform private.settle_final_part(v_goal.id);
    update public.checkpoints c set order_position = r.n
    from (select id, row_number() over (order by is_final, deadline) as n from public.checkpoints
          where goal_id = v_goal.id) r
    where c.id = r.id;
    v_outcome := jsonb_build_object('checkpoint_id', v_cp.id, 'deadline', v_when, 'stake_cents', v_cents);
  elsif v_request.change_type = 'cancel_goal' then
    update public.goals set status = 'canceled', closed_at = now() where id = v_goal.id;
    -- What unfinished consequences are owed stays; the rest of the stake goes back to available.
    v_outcome := jsonb_build_object('released_cents', app.release_stake(v_goal.id));
  end if;

  update public.goal_change_requests
  set status = case when v_lapse is null then 'applied' else 'lapsed' end::public.goal_change_status,
      applied_at = now(),
      outcome = case when v_lapse is null then v_outcome else jsonb_build_object('reason', v_lapse) end
  where id = p_request_id
  returning * into v_request;
  perform app.audit('goal', v_goal.id, 'change_' || v_request.status::text, v_goal.user_id,
    jsonb_build_object('request_id', v_request.id, 'type', v_request.change_type, 'outcome', v_request.outcome));
  perform app.queue_notification('goal_changed', v_goal.user_id, v_request.id,
    jsonb_build_object('request_id', v_request.id, 'outcome', v_request.status), null,
    'goal_changed:' || v_request.status::text || ':' || v_request.id);
  return v_request;
end
$$;

-- The scheduler's pass: every easing request whose notice has run out, oldest first, each in
-- its own subtransaction, so one that cannot apply lapses alone and never stalls the rest.
-- Time decides: before a change applies, the goal's deadlines that fell by its effective time are
-- judged as they stood (detected, rolled and held, with the pass's odds and contest window), so a
-- cancellation, a pause or a lower stake timed just after a deadline never erases its miss. If that
-- judgement cannot be made, the change waits for the next pass.
drop function if exists app.apply_due_goal_changes(integer);
create or replace function app.apply_due_goal_changes(
  p_limit integer default 100,
  p_odds_numerator integer default 1,
  p_odds_denominator integer default 3,
  p_contest_window interval default interval '0'
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_id uuid;
  v_goal_id uuid;
  v_effective timestamptz;
  v_count integer := 0;
  v_counts jsonb;
  v_detected jsonb := '{}'::jsonb;
  v_key text;
begin
  for v_id, v_goal_id, v_effective in
    select r.id, r.goal_id, r.effective_at from public.goal_change_requests r
    where r.status = 'pending' and r.effective_at <= now()
    order by r.effective_at limit p_limit
    for update skip locked
  loop
    begin
      -- The goal's lock first: detection skips locked rows, and must skip none of this goal's.
      perform 1 from public.goals where id = v_goal_id for update;
      v_counts := app.detect_missed_deadlines(1000, p_odds_numerator, p_odds_denominator, p_contest_window,
                                              v_goal_id, v_effective);
      for v_key in select jsonb_object_keys(v_counts) loop
        v_detected := jsonb_set(v_detected, array[v_key],
          to_jsonb(coalesce((v_detected ->> v_key)::integer, 0) + (v_counts ->> v_key)::integer));
      end loop;
    exception when others then
      perform app.audit('goal_change', v_id, 'deferred', null, jsonb_build_object('sqlstate', sqlstate));
      continue;
    end;
    begin
      perform private.apply_goal_change(v_id);
    exception when others then
      update public.goal_change_requests
      set status = 'lapsed', applied_at = now(),
          outcome = jsonb_build_object('reason', 'it could not be applied', 'sqlstate', sqlstate)
      where id = v_id;
      perform app.audit('goal_change', v_id, 'lapsed', null, jsonb_build_object('sqlstate', sqlstate));
    end;
    v_count := v_count + 1;
  end loop;
  return jsonb_build_object('applied', v_count, 'detected', v_detected);
end
$$;

-- The owner withdraws a request still waiting for its notice period.
create or replace function app.cancel_goal_change(p_request_id uuid, p_user_id uuid)
returns public.goal_change_requests
language plpgsql security definer
set search_path = ''
as $$
declare
  v_request public.goal_change_requests;
begin
  select * into v_request from public.goal_change_requests where id = p_request_id for update;
  if not found or v_request.user_id <> p_user_id then
    raise exception using errcode = 'P0002', message = 'no such change request';
  end if;
  if v_request.status <> 'pending' then
    raise exception using errcode = '55000', message = 'this change request is already ' || v_request.status::text;
  end if;
  update public.goal_change_requests set status = 'canceled', canceled_at = now() where id = p_request_id
  returning * into v_request;
  perform app.audit('goal', v_request.goal_id, 'change_canceled', p_user_id,
    jsonb_build_object('request_id', v_request.id));
  return v_request;
end
$$;

revoke all on function private.refuse_inside_horizon(text, timestamptz, timestamptz),
  private.goal_checkpoint(uuid, jsonb), private.apply_goal_change(uuid), private.settle_final_part(uuid) from public;
grant execute on function
  app.request_goal_change(uuid, uuid, public.goal_change_type, jsonb, interval, integer),
  app.apply_due_goal_changes(integer, integer, integer, interval),
  app.cancel_goal_change(uuid, uuid)
  to service_role;
