-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- Detection (with the roulette) and the consequence engine's claim/finish protocol.
-- Every function, trigger and grant here is this file's alone; numbered migrations hold tables,
-- types, indexes, RLS and policies.

create or replace function private.random_u32() returns bigint
language sql volatile
set search_path = ''
as $$
  select ('x' || substr(replace(pg_catalog.gen_random_uuid()::text, '-', ''), 1, 8))::bit(32)::bigint
$$;

drop function if exists private.has_protecting_submission(uuid, timestamptz, interval);
drop function if exists private.has_protecting_submission(uuid, timestamptz);

-- -----------------------------------------------------------------------------
-- Detection
-- -----------------------------------------------------------------------------
-- Finds up to p_batch missed checkpoints and up to p_batch failed goals, marks
-- them, rolls the roulette for checkpoints and writes every consequence row,
-- one statement per kind. Safe under any number of concurrent runs: rows are
-- taken with skip locked and re-checked as they are updated. Returns counts.
--
-- Time decides, not the order in which a pass runs its stages: a deadline is judged as the goal
-- stood when it fell. A deadline that fell after a change took effect (a request whose notice has
-- run out but which is not applied yet) waits for that change; applying a change first judges the
-- goal's deadlines up to its effective time (p_goal_id, p_as_of: see app.apply_due_goal_changes).
--
-- On time means inserted in time (submitted_at is the server's clock, set by a guard): however
-- late we capture it (a slow Database Webhook, a cold instance, a provider outage), a submission
-- protects its checkpoint until it has a final verdict, however long the grader, the witness or
-- the review takes; a late capture goes to a person (shared/proof/grading.py), never to a charge.
--
-- Both conditions are written out in each statement rather than called: a helper with its own
-- search_path cannot be inlined, and these run for every overdue row.
drop function if exists app.detect_missed_deadlines(integer, integer, integer, interval);
drop function if exists app.detect_missed_deadlines(integer, integer, integer);
create or replace function app.detect_missed_deadlines(
  p_batch integer default 500,
  p_odds_numerator integer default 1,
  p_odds_denominator integer default 3,
  -- Consequences are held this long for a contest (check_deadlines passes CONTEST_WINDOW_HOURS).
  p_contest_window interval default interval '0',
  -- One goal's deadlines only, and only those that fell by p_as_of (a change's effective time).
  p_goal_id uuid default null,
  p_as_of timestamptz default null
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_checkpoints integer := 0;
  v_hits integer := 0;
  v_spared integer := 0;
  v_checkpoint_consequences integer := 0;
  v_goals integer := 0;
  v_goal_consequences integer := 0;
  v_as_of timestamptz := least(coalesce(p_as_of, now()), now());
begin
  if p_odds_numerator > p_odds_denominator then
    raise exception using errcode = '22023', message = 'roulette odds must be at most 1';
  end if;

  -- Missed checkpoints (not the final one): mark, roll, and write the consequence of a hit.
  with candidates as (
    select cp.id, cp.goal_id
    from public.checkpoints cp
    join public.goals g on g.id = cp.goal_id and g.status = 'active'
    where cp.status = 'pending' and not cp.is_final and cp.deadline <= v_as_of
      and (p_goal_id is null or cp.goal_id = p_goal_id)
      and not exists (select 1 from public.goal_change_requests r
                      where r.goal_id = cp.goal_id and r.status = 'pending'
                        and r.effective_at < cp.deadline and r.effective_at <= now())
      and not exists (select 1 from public.submissions s
                      where s.checkpoint_id = cp.id and s.submitted_at <= cp.deadline
                        and s.status in ('passed', 'pending', 'grading', 'awaiting_witness', 'needs_review'))
    order by cp.deadline
    limit p_batch
    -- The goal's lock too: a goal's checkpoints and final are detected by one run at a time.
    for update of cp, g skip locked
  ), missed as (
    update public.checkpoints cp set status = 'missed', missed_at = now()
    from candidates c
    where cp.id = c.id and cp.status = 'pending'
    returning cp.id, cp.goal_id, cp.stake_cents
  ), facts as (
    select m.id as checkpoint_id, m.goal_id, g.user_id, g.charity_destination, g.minor_kompromat_id,
           -- What this deadline put at stake, fixed when the goal activated or the checkpoint was
           -- added (never counted now: checkpoints added since cannot dilute it).
           coalesce(m.stake_cents, 0) / 100.0 as share,
           (select c.id from public.contacts c
            where c.user_id = g.user_id and c.verified and c.declined_at is null
              and 'consequence_target' = any (c.role)
            order by private.random_u32() limit 1) as target,
           private.random_u32() as draw,
           private.random_u32() as pick
    from missed m join public.goals g on g.id = m.goal_id
  ), decided as (
    select f.*,
           case when f.draw * p_odds_denominator < p_odds_numerator::bigint * 4294967296
                then 'hit'::public.roulette_outcome else 'spared'::public.roulette_outcome end as outcome,
           -- Among the consequences this goal can carry, pick one at random.
           case
             when f.share > 0 and f.minor_kompromat_id is not null and f.target is not null
               then (case when f.pick % 2 = 0 then 'monetary' else 'humiliation_email' end)
             when f.share > 0 then 'monetary'
             when f.minor_kompromat_id is not null and f.target is not null then 'humiliation_email'
           end as kind,
           gen_random_uuid() as consequence_id
    from facts f
  ), rolls as (
    insert into public.roulette_rolls (checkpoint_id, goal_id, user_id, draw, odds_numerator, odds_denominator,
                                       outcome, consequence_id)
    select d.checkpoint_id, d.goal_id, d.user_id, d.draw, p_odds_numerator, p_odds_denominator, d.outcome,
           case when d.outcome = 'hit' and d.kind is not null then d.consequence_id end
    from decided d
    on conflict (checkpoint_id) do nothing
    returning checkpoint_id, outcome, consequence_id
  ), created as (
    insert into public.consequences (id, checkpoint_id, goal_id, user_id, consequence_type, monetary_amount,
                                     charity_destination, kompromat_id, target_contact_id, roulette_roll,
                                     execution_status, execute_after)
    select d.consequence_id, d.checkpoint_id, d.goal_id, d.user_id, d.kind::public.consequence_type_enum,
           case when d.kind = 'monetary' then d.share end,
           d.charity_destination,
           case when d.kind = 'humiliation_email' then d.minor_kompromat_id end,
           case when d.kind = 'humiliation_email' then d.target end,
           jsonb_build_object('draw', d.draw, 'odds', p_odds_numerator || '/' || p_odds_denominator,
                              'outcome', d.outcome),
           'held'::public.execution_status_enum, now() + p_contest_window
    from decided d
    join rolls r on r.checkpoint_id = d.checkpoint_id and r.consequence_id = d.consequence_id
    on conflict (checkpoint_id, consequence_type) do nothing
    returning id
  ), spared_notices as (
    -- The user is told they were spared; the dedupe key is send_notification's own.
    insert into public.notifications (type, user_id, subject_id, dedupe_key, template_data)
    select 'spared', d.user_id, d.checkpoint_id, 'spared:' || d.checkpoint_id || ':' || d.user_id,
           jsonb_build_object('checkpoint_id', d.checkpoint_id, 'goal_title', g.title,
                              'checkpoint_title', cp.title)
    from decided d
    join rolls r on r.checkpoint_id = d.checkpoint_id and r.outcome = 'spared'
    join public.goals g on g.id = d.goal_id
    join public.checkpoints cp on cp.id = d.checkpoint_id
    on conflict (dedupe_key) do nothing
    returning id
  )
  select (select count(*) from rolls),
         (select count(*) from rolls where outcome = 'hit'),
         (select count(*) from rolls where outcome = 'spared'),
         (select count(*) from created)
    into v_checkpoints, v_hits, v_spared, v_checkpoint_consequences;

  -- Missed final deadlines: the goal fails, and every consequence it carries fires.
  with candidates as (
    select cp.id, cp.goal_id
    from public.checkpoints cp
    join public.goals g on g.id = cp.goal_id and g.status = 'active'
    where cp.status = 'pending' and cp.is_final and cp.deadline <= v_as_of
      and (p_goal_id is null or cp.goal_id = p_goal_id)
      and not exists (select 1 from public.goal_change_requests r
                      where r.goal_id = cp.goal_id and r.status = 'pending'
                        and r.effective_at < cp.deadline and r.effective_at <= now())
      and not exists (select 1 from public.submissions s
                      where s.checkpoint_id = cp.id and s.submitted_at <= cp.deadline
                        and s.status in ('passed', 'pending', 'grading', 'awaiting_witness', 'needs_review'))
    order by cp.deadline
    limit p_batch
    -- The goal's lock too: a goal's checkpoints and final are detected by one run at a time.
    for update of cp, g skip locked
  ), missed as (
    update public.checkpoints cp set status = 'missed', missed_at = now()
    from candidates c
    where cp.id = c.id and cp.status = 'pending'
    returning cp.id, cp.goal_id
  ), failed as (
    update public.goals g set status = 'failed', closed_at = now()
    from missed m
    where g.id = m.goal_id and g.status = 'active'
    returning g.id, g.user_id, g.charity_destination, g.major_kompromat_id, m.id as checkpoint_id
  ), facts as (
    select f.*,
           -- The rest of the stake: what is reserved (or held by an open dispute, which may give it
           -- back), less what unfinished shares are owed.
           app.goal_reserved_cents(f.id) + app.goal_disputed_cents(f.id) - app.goal_owed_cents(f.id)
             as reserved_cents,
           exists (select 1 from public.contacts c
                   where c.user_id = f.user_id and c.verified and c.declined_at is null
                     and 'consequence_target' = any (c.role)) as has_targets,
           exists (select 1 from public.x_connections x where x.user_id = f.user_id) as has_x
    from failed f
  ), created as (
    insert into public.consequences (checkpoint_id, goal_id, user_id, consequence_type, monetary_amount,
                                     charity_destination, kompromat_id, social_platform,
                                     execution_status, execute_after)
    select f.checkpoint_id, f.id, f.user_id, 'monetary'::public.consequence_type_enum, f.reserved_cents / 100.0,
           f.charity_destination,
           null, null, 'held'::public.execution_status_enum, now() + p_contest_window
    from facts f where f.reserved_cents > 0
    union all
    select f.checkpoint_id, f.id, f.user_id, 'humiliation_email'::public.consequence_type_enum, null, null,
           f.major_kompromat_id, 'email', 'held'::public.execution_status_enum, now() + p_contest_window
    from facts f where f.major_kompromat_id is not null and f.has_targets
    union all
    select f.checkpoint_id, f.id, f.user_id, 'humiliation_x'::public.consequence_type_enum, null, null,
           f.major_kompromat_id, 'x', 'held'::public.execution_status_enum, now() + p_contest_window
    from facts f where f.major_kompromat_id is not null and f.has_x
    on conflict (checkpoint_id, consequence_type) do nothing
    returning id
  )
  select (select count(*) from failed), (select count(*) from created) into v_goals, v_goal_consequences;

  if v_checkpoints + v_goals > 0 then
    perform app.audit('scheduler', null, 'detected', null, jsonb_build_object(
      'checkpoints_missed', v_checkpoints, 'hits', v_hits, 'spared', v_spared, 'goals_failed', v_goals,
      'consequences_created', v_checkpoint_consequences + v_goal_consequences));
  end if;
  return jsonb_build_object(
    'checkpoints_missed', v_checkpoints, 'hits', v_hits, 'spared', v_spared, 'goals_failed', v_goals,
    'consequences_created', v_checkpoint_consequences + v_goal_consequences,
    'detected', v_checkpoints + v_goals);
end
$$;

-- -----------------------------------------------------------------------------
-- Execution protocol
-- -----------------------------------------------------------------------------
-- Claims a due consequence for one executor: pending (past its backoff), or
-- executing under a lease that expired. Returns the row, or nothing when the
-- consequence is not claimable (done, failed, or held by a live executor).
-- A monetary consequence is earmarked in the same transaction, under a lock on
-- its goal: its amount, capped at what the goal holds beyond other earmarks.
-- No transfer is ever made for money that is not earmarked.
create or replace function app.claim_consequence(p_consequence_id uuid, p_owner text, p_lease_seconds integer default 120)
returns setof public.consequences
language plpgsql security definer
set search_path = ''
as $$
declare
  v_c public.consequences;
  v_cap bigint;
begin
  update public.consequences
  set execution_status = 'executing', attempts = attempts + 1, lease_owner = p_owner,
      lease_expires_at = now() + make_interval(secs => p_lease_seconds)
  where id = p_consequence_id
    and ((execution_status = 'pending' and next_attempt_at <= now())
         -- A held consequence whose contest window ended uncontested is due.
         or (execution_status = 'held' and contest_status = 'none' and execute_after <= now())
         or (execution_status = 'executing' and lease_expires_at < now()))
  returning * into v_c;
  if not found then
    return;
  end if;
  if v_c.consequence_type = 'monetary' and v_c.provider_reference is null and v_c.earmarked_cents = 0 then
    perform 1 from public.goals g where g.id = v_c.goal_id for update;
    -- Money an open card dispute holds is neither the user's nor the charity's yet: the payout
    -- waits for the dispute to close (app.record_dispute makes it due again), checked hourly.
    if app.goal_disputed_cents(v_c.goal_id) > 0 then
      update public.consequences
      set execution_status = 'pending', attempts = attempts - 1, lease_owner = null, lease_expires_at = null,
          next_attempt_at = now() + interval '1 hour',
          deferred_reason = 'the money for it is held by an open card dispute; it waits until the dispute closes'
      where id = v_c.id;
      perform app.audit('consequence', v_c.id, 'deferred', v_c.user_id, jsonb_build_object('reason', 'dispute_open'));
      return;
    end if;
    v_cap := app.goal_reserved_cents(v_c.goal_id) - coalesce((
      select sum(c.earmarked_cents) from public.consequences c
      where c.goal_id = v_c.goal_id and c.id <> v_c.id), 0);
    update public.consequences
    set earmarked_cents = least((v_c.monetary_amount * 100)::bigint, greatest(v_cap, 0))
    where id = v_c.id
    returning * into v_c;
  end if;
  return next v_c;
end
$$;

-- Records the charity transfer and turns the earmark into the forfeit, in one
-- transaction. The amount moved must be the amount earmarked.
create or replace function app.record_transfer(p_consequence_id uuid, p_owner text, p_transfer_id text, p_amount_cents bigint)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  v_c public.consequences;
begin
  select * into v_c from public.consequences where id = p_consequence_id for update;
  if v_c.execution_status <> 'executing' or v_c.lease_owner is distinct from p_owner then
    raise exception using errcode = '55000', message = 'this executor no longer holds the consequence';
  end if;
  if p_amount_cents <> v_c.earmarked_cents then
    raise exception using errcode = '55000', message = 'only the earmarked amount can be recorded as transferred';
  end if;
  update public.consequences set provider_reference = p_transfer_id, earmarked_cents = 0 where id = p_consequence_id;
  perform app.ledger_post(v_c.user_id, 'forfeit', p_amount_cents, 0, -p_amount_cents, p_amount_cents,
    'forfeit:' || p_consequence_id, v_c.goal_id, p_consequence_id, p_transfer_id);
  perform app.stripe_moved('forfeit:' || p_consequence_id, p_transfer_id, 'transfer', -p_amount_cents, v_c.user_id);
end
$$;

-- Ends an execution: completed, failed for good, or back to pending after a
-- backoff, and queues the user's notice of a final outcome in the same
-- transaction. Only the lease holder may finish.
create or replace function app.finish_consequence(
  p_consequence_id uuid, p_owner text, p_outcome text, p_error text default null,
  p_retry_in_seconds integer default null, p_provider_reference text default null
) returns public.consequences
language plpgsql security definer
set search_path = ''
as $$
declare
  v_c public.consequences;
begin
  select * into v_c from public.consequences where id = p_consequence_id for update;
  if v_c.execution_status <> 'executing' or v_c.lease_owner is distinct from p_owner then
    raise exception using errcode = '55000', message = 'this executor no longer holds the consequence';
  end if;
  if p_outcome = 'completed' and v_c.consequence_type = 'monetary' and v_c.provider_reference is null then
    raise exception using errcode = '55000', message = 'a payout completes only once its transfer is recorded';
  end if;
  update public.consequences
  set execution_status = case p_outcome when 'completed' then 'completed'::public.execution_status_enum
                                        when 'failed' then 'failed'::public.execution_status_enum
                                        else 'pending'::public.execution_status_enum end,
      executed_at = case when p_outcome = 'completed' then now() else executed_at end,
      last_error = p_error,
      provider_reference = coalesce(p_provider_reference, provider_reference),
      next_attempt_at = now() + make_interval(secs => coalesce(p_retry_in_seconds, 0)),
      lease_owner = null, lease_expires_at = null,
      -- A permanent failure releases the earmark; a retry keeps it for the next attempt.
      earmarked_cents = case when p_outcome = 'failed' then 0 else earmarked_cents end
  where id = p_consequence_id
  returning * into v_c;
  -- A closed goal keeps only what its unfinished consequences are owed.
  if p_outcome = 'failed' and v_c.consequence_type = 'monetary'
     and exists (select 1 from public.goals g where g.id = v_c.goal_id and g.status in ('completed', 'canceled')) then
    perform app.release_stake(v_c.goal_id);
  end if;
  -- X took our access away on its own: the post falls back to the email targets.
  if p_outcome = 'failed' and v_c.consequence_type = 'humiliation_x' and p_error like 'x_revoked%' then
    insert into public.consequences (checkpoint_id, goal_id, user_id, consequence_type, kompromat_id,
                                     social_platform)
    values (v_c.checkpoint_id, v_c.goal_id, v_c.user_id, 'humiliation_email', v_c.kompromat_id, 'email')
    on conflict (checkpoint_id, consequence_type) do nothing;
  end if;
  perform app.audit('consequence', p_consequence_id, 'execution_' || p_outcome, v_c.user_id,
    jsonb_build_object('attempts', v_c.attempts, 'type', v_c.consequence_type));
  -- The user's notice is born with the outcome it reports; a sender delivers it later.
  if p_outcome in ('completed', 'failed') then
    perform app.queue_notification('consequence_notification', v_c.user_id, v_c.id,
      jsonb_build_object('consequence_id', v_c.id,
        'outcome', case when p_outcome = 'completed' then 'executed'
                        when p_error like 'insufficient_funds%' then 'insufficient_funds'
                        when p_error like 'x_revoked%' then 'moved_to_email'
                        else 'failed' end));
  end if;
  return v_c;
end
$$;

-- The recipients of a humiliation are fixed when it is created: one delivery row
-- per verified, undeclined target (the one drawn for a checkpoint, every target
-- for a goal's failure). Deleting or editing a target afterwards changes nothing.
create or replace function app.fix_consequence_recipients() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.consequence_type = 'humiliation_email' then
    insert into public.consequence_deliveries (consequence_id, channel, contact_id, recipient)
    select new.id, 'email', t.id, t.email
    from public.contacts t
    where t.user_id = new.user_id and t.verified and t.declined_at is null
      and (t.id = new.target_contact_id or (new.target_contact_id is null and 'consequence_target' = any (t.role)))
    on conflict do nothing;
  elsif new.consequence_type = 'humiliation_x' then
    insert into public.consequence_deliveries (consequence_id, channel, recipient)
    values (new.id, 'x', 'x') on conflict do nothing;
  end if;
  return new;
end
$$;

-- The owner is told at once what will happen, when, and how to contest it: queued in the
-- transaction that creates the held consequence.
create or replace function app.announce_held_consequence() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.execution_status = 'held' and new.execute_after > now() then
    perform app.queue_notification('consequence_notification', new.user_id, new.id,
      jsonb_build_object('consequence_id', new.id, 'outcome', 'held'),
      null, 'consequence_held:' || new.id);
  end if;
  return new;
end
$$;

create or replace trigger consequences_announce_held after insert on public.consequences
  for each row execute function app.announce_held_consequence();

create or replace trigger consequences_fix_recipients after insert on public.consequences
  for each row execute function app.fix_consequence_recipients();

-- The X account a goal's failure would post to: in use while an active goal
-- carries major kompromat or an X consequence is unfinished.
create or replace function app.x_connection_in_use(p_user_id uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from public.goals g
                 where g.user_id = p_user_id and g.status = 'active' and g.major_kompromat_id is not null)
      or exists (select 1 from public.consequences c
                 where c.user_id = p_user_id and c.consequence_type = 'humiliation_x'
                   and c.execution_status in ('held', 'pending', 'executing'))
$$;

-- -----------------------------------------------------------------------------
-- The contest window
-- -----------------------------------------------------------------------------
-- Held consequences whose window ended uncontested become due; returns how many.
create or replace function app.release_held_consequences() returns integer
language sql security definer
set search_path = ''
as $$
  with released as (
    update public.consequences
    set execution_status = 'pending', next_attempt_at = now()
    where execution_status = 'held' and contest_status = 'none' and execute_after <= now()
    returning 1
  )
  select count(*)::integer from released
$$;

-- The owner contests a held consequence, once, with a reason, while its window is open. It then
-- waits for an operator: a contest only delays, the operator decides.
create or replace function app.contest_consequence(p_consequence_id uuid, p_user_id uuid, p_reason text)
returns public.consequences
language plpgsql security definer
set search_path = ''
as $$
declare
  v_c public.consequences;
begin
  select * into v_c from public.consequences where id = p_consequence_id for update;
  if not found or v_c.user_id <> p_user_id then
    raise exception using errcode = 'P0002', message = 'no such consequence';
  end if;
  if v_c.contest_status <> 'none' then
    raise exception using errcode = '55000', message = 'this consequence has already been contested';
  end if;
  if v_c.execution_status <> 'held' or v_c.execute_after <= now() then
    raise exception using errcode = '55000', message = 'the contest window for this consequence has closed';
  end if;
  update public.consequences
  set contest_status = 'contested', contest_reason = p_reason, contested_at = now()
  where id = p_consequence_id
  returning * into v_c;
  perform app.audit('consequence', p_consequence_id, 'contested', p_user_id,
    jsonb_build_object('reason_length', char_length(p_reason)));
  return v_c;
end
$$;

-- An operator decides a contested consequence: execute (upheld: it becomes due now) or cancel
-- (overturned: it never runs, and a closed goal's stake it held goes back to the user). Once.
create or replace function app.decide_consequence(p_consequence_id uuid, p_operator uuid, p_decision text,
                                                  p_reason text)
returns public.consequences
language plpgsql security definer
set search_path = ''
as $$
declare
  v_c public.consequences;
begin
  if p_decision not in ('execute', 'cancel') then
    raise exception using errcode = '22023', message = 'the decision is execute or cancel';
  end if;
  select * into v_c from public.consequences where id = p_consequence_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = 'no such consequence';
  end if;
  if v_c.user_id = p_operator then
    raise exception using errcode = '42501', message = 'an operator cannot decide their own case';
  end if;
  if v_c.contest_status <> 'contested' or v_c.execution_status <> 'held' then
    raise exception using errcode = '55000', message = 'this consequence is not waiting for a decision';
  end if;
  update public.consequences
  set contest_status = case when p_decision = 'execute' then 'upheld'::public.contest_status
                            else 'overturned'::public.contest_status end,
      execution_status = case when p_decision = 'execute' then 'pending'::public.execution_status_enum
                              else 'canceled'::public.execution_status_enum end,
      next_attempt_at = now(), decided_by = p_operator, decided_at = now(), decision_reason = p_reason
  where id = p_consequence_id
  returning * into v_c;
  if p_decision = 'cancel' and v_c.consequence_type = 'monetary'
     and exists (select 1 from public.goals g where g.id = v_c.goal_id
                 and g.status in ('completed', 'failed', 'canceled')) then
    perform app.release_stake(v_c.goal_id);
  end if;
  perform app.audit('consequence', p_consequence_id, 'decided_' || p_decision, v_c.user_id,
    jsonb_build_object('operator', p_operator, 'reason', p_reason));
  perform app.queue_notification('consequence_notification', v_c.user_id, v_c.id,
    jsonb_build_object('consequence_id', v_c.id,
                       'outcome', case when p_decision = 'execute' then 'contest_upheld' else 'canceled' end),
    null, 'contest_decided:' || v_c.id);
  return v_c;
end
$$;

revoke all on function private.random_u32(), app.fix_consequence_recipients(),
  app.x_connection_in_use(uuid), app.release_held_consequences(), app.contest_consequence(uuid, uuid, text),
  app.decide_consequence(uuid, uuid, text, text), app.announce_held_consequence() from public;

grant execute on function private.random_u32(), app.x_connection_in_use(uuid), app.release_held_consequences(),
  app.contest_consequence(uuid, uuid, text), app.decide_consequence(uuid, uuid, text, text) to service_role;


revoke all on function app.detect_missed_deadlines(integer, integer, integer, interval, uuid, timestamptz),
  app.claim_consequence(uuid, text, integer), app.record_transfer(uuid, text, text, bigint),
  app.finish_consequence(uuid, text, text, text, integer, text) from public;

grant execute on function app.detect_missed_deadlines(integer, integer, integer, interval, uuid, timestamptz),
  app.claim_consequence(uuid, text, integer), app.record_transfer(uuid, text, text, bigint),
  app.finish_consequence(uuid, text, text, text, integer, text) to service_role;
