-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- Goal state: activation, grades, the audit log.
-- Every function, trigger and grant here is this file's alone; numbered migrations hold tables,
-- types, indexes, RLS and policies.

-- =============================================================================
-- State-transition functions. Every change that moves money, consequences or a
-- grade goes through one of these, inside the caller's transaction: one source
-- of truth for the functions, the scheduler and the tests.
--
-- All live in the unexposed schema app, run as security definer with an empty
-- search_path, and are executable by service_role only.
-- =============================================================================
-- Appends one event to the audit log. Details never carry content or secrets.
create or replace function app.audit(
  p_entity text, p_entity_id uuid, p_action text, p_user_id uuid, p_details jsonb default '{}'::jsonb
) returns void
language sql security definer
set search_path = ''
as $$
  insert into public.audit_log (entity, entity_id, action, user_id, details)
  values (p_entity, p_entity_id, p_action, p_user_id, coalesce(p_details, '{}'::jsonb))
$$;

-- Activation reserves the stake (refused when the available balance is short) and fixes what
-- each deadline puts at stake: every checkpoint floor(stake / (checkpoints + 1)) cents, the final
-- deadline the rest, so the parts sum to the stake exactly. A goal has at most
-- p_max_checkpoints checkpoints besides the final deadline (MAX_CHECKPOINTS_PER_GOAL).
drop function if exists app.activate_goal(uuid);
create or replace function app.activate_goal(p_goal_id uuid, p_max_checkpoints integer default 52)
returns public.goals
language plpgsql security definer
set search_path = ''
as $$
declare
  v_goal public.goals;
  v_next_position integer;
  v_stake_cents bigint;
  v_count bigint;
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

  select count(*) into v_count from public.checkpoints cp where cp.goal_id = p_goal_id;
  if v_count > p_max_checkpoints then
    raise exception using errcode = '23514',
      message = 'a goal has at most ' || p_max_checkpoints || ' checkpoints besides its final deadline; this one has '
        || v_count;
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

  update public.checkpoints set stake_cents = v_stake_cents / (v_count + 1) where goal_id = p_goal_id;
  insert into public.checkpoints (goal_id, title, deadline, order_position, is_final, requirements, stake_cents)
  values (p_goal_id, 'Final deadline', v_goal.final_deadline, v_next_position, true, v_goal.grading_rubric,
          v_stake_cents - v_count * (v_stake_cents / (v_count + 1)));

  update public.goals set status = 'active', activated_at = now()
  where id = p_goal_id
  returning * into v_goal;

  perform app.audit('goal', p_goal_id, 'activated', v_goal.user_id,
    jsonb_build_object('stake_cents', v_stake_cents));
  return v_goal;
end
$$;

-- The owner activates their draft (change_goal's `activate`): another user's goal and an unknown
-- one are the same 404, before any state is looked at; a leaving account commits to nothing new.
create or replace function app.activate_own_goal(p_goal_id uuid, p_user_id uuid, p_max_checkpoints integer)
returns public.goals
language plpgsql security definer
set search_path = ''
as $$
declare
  v_owner uuid;
begin
  select g.user_id into v_owner from public.goals g where g.id = p_goal_id for update;
  if v_owner is distinct from p_user_id then
    raise exception using errcode = 'P0002', message = 'no such goal';
  end if;
  if exists (select 1 from public.users u where u.id = p_user_id and u.leaving_requested_at is not null) then
    raise exception using errcode = '55000', message = 'this account is leaving: it starts no new goal';
  end if;
  return app.activate_goal(p_goal_id, p_max_checkpoints);
end
$$;

-- Records a grade, completes the checkpoint (and the goal, releasing the rest of its
-- stake) when a submission made in time passes, and queues the owner's notices.
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
        perform app.queue_notification('stake_released', v_sub.user_id, v_cp.goal_id,
          jsonb_build_object('goal_id', v_cp.goal_id, 'amount_cents', app.release_stake(v_cp.goal_id)));
        perform app.audit('goal', v_cp.goal_id, 'completed', v_sub.user_id, '{}'::jsonb);
      end if;
    end if;
  end if;

  perform app.audit('submission', v_sub.id, 'graded', v_sub.user_id,
    jsonb_build_object('status', p_status, 'forced', p_force));
  -- The owner's notice of the verdict, in the transaction that records it.
  if p_status in ('passed', 'failed', 'needs_review', 'awaiting_witness') then
    perform app.queue_notification('submission_result', v_sub.user_id, v_sub.id,
      jsonb_build_object('submission_id', v_sub.id, 'outcome', p_status),
      null, 'submission_result:' || v_sub.id || ':' || p_status);
  end if;
  return v_sub;
end
$$;

revoke all on function app.audit(text, uuid, text, uuid, jsonb) from public;

revoke all on function app.activate_goal(uuid, integer), app.activate_own_goal(uuid, uuid, integer) from public;

revoke all on function app.record_grade(uuid, public.submission_status, jsonb, public.verdict_enum, boolean) from public;

grant execute on function app.activate_goal(uuid, integer), app.activate_own_goal(uuid, uuid, integer) to service_role;

grant execute on function app.record_grade(uuid, public.submission_status, jsonb, public.verdict_enum, boolean) to service_role;
