-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- Grading: claiming a submission, witness verdicts, vouches.
-- Every function, trigger and grant here is this file's alone; numbered migrations hold tables,
-- types, indexes, RLS and policies.

-- -----------------------------------------------------------------------------
-- Triggers
-- -----------------------------------------------------------------------------
-- Vouching is recorded by the service, never by the owner.
create or replace function app.guard_vouches() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if private.is_privileged() then
    return new;
  end if;
  if new.vouched_by is distinct from (case when tg_op = 'UPDATE' then old.vouched_by end)
     or new.vouched_at is distinct from (case when tg_op = 'UPDATE' then old.vouched_at end) then
    perform private.refuse('a submission''s grading fields are set only by the grader');
  end if;
  return new;
end
$$;

-- -----------------------------------------------------------------------------
-- State functions
-- -----------------------------------------------------------------------------
-- Claims a submission for grading: one grader at a time. A submission already
-- graded is claimed only with p_force; one stuck in 'grading' longer than
-- p_stale (its grader died) can be claimed again. Returns nothing otherwise.
create or replace function app.begin_grading(p_submission_id uuid, p_force boolean default false,
                                  p_stale interval default interval '10 minutes')
returns setof public.submissions
language sql security definer
set search_path = ''
as $$
  update public.submissions
  set status = 'grading'
  where id = p_submission_id
    and (status = 'pending'
         or (status = 'grading' and updated_at < now() - p_stale)
         or (p_force and status in ('passed', 'failed', 'needs_review', 'awaiting_witness')))
  returning *
$$;

-- Puts a submission whose grading could not finish back to pending, for a retry: the
-- scheduler's regrading stage takes it again after a backoff (1 minute, doubling, at most 6 hours).
create or replace function app.abort_grading(p_submission_id uuid) returns void
language sql security definer
set search_path = ''
as $$
  update public.submissions
  set status = 'pending', grading_attempts = grading_attempts + 1,
      next_grading_at = now() + least(interval '6 hours', interval '1 minute' * power(2, grading_attempts))
  where id = p_submission_id and status = 'grading'
$$;

-- Records a witness's verdict: the request must be unused and unexpired, and
-- bound to this submission. A witness's fail is final.
create or replace function app.record_witness_verdict(
  p_request_id uuid, p_submission_id uuid, p_verdict public.verdict_enum, p_comment text default null
) returns public.submissions
language plpgsql security definer
set search_path = ''
as $$
declare
  v_request public.witness_requests;
  v_sub public.submissions;
begin
  update public.witness_requests
  set used_at = now(), verdict = p_verdict, comment = p_comment
  where id = p_request_id and submission_id = p_submission_id and used_at is null and expires_at > now()
  returning * into v_request;
  if not found then
    raise exception using errcode = '55000', message = 'this witness link was already used, has expired, or is not valid';
  end if;
  select * into v_sub from public.submissions where id = p_submission_id;
  if v_sub.status <> 'awaiting_witness' then
    raise exception using errcode = '55000', message = 'this submission is not waiting for a witness';
  end if;
  return app.record_grade(p_submission_id,
    case when p_verdict = 'pass' then 'passed'::public.submission_status else 'failed'::public.submission_status end,
    null, p_verdict, false);
end
$$;

-- Another registered user vouches for an AI fail. A vouch never passes by
-- itself: it moves the fail to human review (needs_review, which protects an
-- on-time checkpoint), before the deadline, once per submission, never by the
-- owner or an alias of the owner, and at most p_daily_limit vouches per voucher
-- in any 24 hours.
drop function if exists app.record_vouch(uuid, uuid);
create or replace function app.record_vouch(p_submission_id uuid, p_voucher uuid, p_daily_limit integer)
returns public.submissions
language plpgsql security definer
set search_path = ''
as $$
declare
  v_sub public.submissions;
  v_deadline timestamptz;
  v_owner_email text;
  v_voucher_email text;
  v_voucher_confirmed timestamptz;
begin
  -- Who the voucher is and how often they vouched are checked before any submission is looked at;
  -- then an unknown id and one that is not open for a vouch (not an AI fail, already vouched for,
  -- past its deadline) get the same answer, so ids cannot be probed for their state.
  select u.email, a.email_confirmed_at into v_voucher_email, v_voucher_confirmed
  from public.users u join auth.users a on a.id = u.id where u.id = p_voucher
  for update of u;  -- one voucher's vouches are counted one after another
  if v_voucher_email is null or v_voucher_confirmed is null then
    raise exception using errcode = '42501', message = 'only a registered user with a confirmed email can vouch';
  end if;
  if (select count(*) from public.submissions s
      where s.vouched_by = p_voucher and s.vouched_at > now() - interval '1 day') >= p_daily_limit then
    raise exception using errcode = 'TI003', message = 'you have vouched as often as a day allows; try again tomorrow';
  end if;
  select * into v_sub from public.submissions where id = p_submission_id for update;
  select cp.deadline into v_deadline from public.checkpoints cp where cp.id = v_sub.checkpoint_id;
  if v_sub.id is null or v_sub.vouched_by is not null or v_sub.status <> 'failed'
     or v_sub.human_verdict is not null or v_sub.ai_analysis_result is null or now() > v_deadline then
    raise exception using errcode = 'P0002',
      message = 'no submission open for a vouch has this id: only an AI fail, before its deadline, once';
  end if;
  select u.email into v_owner_email from public.users u where u.id = v_sub.user_id;
  if p_voucher = v_sub.user_id or private.mailbox(v_voucher_email) = private.mailbox(v_owner_email) then
    raise exception using errcode = '42501', message = 'you cannot vouch for your own submission';
  end if;
  update public.submissions set vouched_by = p_voucher, vouched_at = now() where id = p_submission_id;
  perform app.audit('submission', p_submission_id, 'vouched', v_sub.user_id,
    jsonb_build_object('voucher', p_voucher));
  return app.record_grade(p_submission_id, 'needs_review',
    coalesce(v_sub.ai_analysis_result, '{}'::jsonb)
      || jsonb_build_object('outcome', 'needs_review', 'vouched_by', p_voucher,
                            'reason', 'another user vouched for this proof; a person reviews it'),
    null, true);
end
$$;

-- Counts one grading request by a user; refuses (TI003) past the hourly limit per
-- submission or per user.
create or replace function app.note_grading_request(p_user_id uuid, p_submission_id uuid, p_hourly_limit integer)
returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  perform 1 from public.users u where u.id = p_user_id for update;
  if (select count(*) from public.grading_requests r
      where r.user_id = p_user_id and r.requested_at > now() - interval '1 hour') >= p_hourly_limit
     or (select count(*) from public.grading_requests r
         where r.submission_id = p_submission_id and r.requested_at > now() - interval '1 hour') >= p_hourly_limit then
    raise exception using errcode = 'TI003', message = 'too many grading requests this hour; try again later';
  end if;
  insert into public.grading_requests (user_id, submission_id) values (p_user_id, p_submission_id);
end
$$;

-- An operator decides a submission in review: pass or fail, once, with a reason, audited with
-- the operator's id. A pass of proof made in time completes its checkpoint as if graded in time.
create or replace function app.decide_submission(p_submission_id uuid, p_operator uuid, p_decision text,
                                                 p_reason text)
returns public.submissions
language plpgsql security definer
set search_path = ''
as $$
declare
  v_sub public.submissions;
begin
  if p_decision not in ('pass', 'fail') then
    raise exception using errcode = '22023', message = 'the decision is pass or fail';
  end if;
  select * into v_sub from public.submissions where id = p_submission_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = 'no such submission';
  end if;
  if v_sub.user_id = p_operator then
    raise exception using errcode = '42501', message = 'an operator cannot decide their own case';
  end if;
  if v_sub.status <> 'needs_review' then
    raise exception using errcode = '55000', message = 'this submission is not waiting for review';
  end if;
  perform app.audit('submission', p_submission_id, 'reviewed_' || p_decision, v_sub.user_id,
    jsonb_build_object('operator', p_operator, 'reason', p_reason));
  return app.record_grade(p_submission_id,
    case when p_decision = 'pass' then 'passed'::public.submission_status else 'failed'::public.submission_status end,
    coalesce(v_sub.ai_analysis_result, '{}'::jsonb)
      || jsonb_build_object('reviewed_by', p_operator, 'review_reason', p_reason),
    p_decision::public.verdict_enum, true);
end
$$;

create or replace trigger submissions_guard_vouches before insert or update on public.submissions
  for each row execute function app.guard_vouches();

revoke all on function app.begin_grading(uuid, boolean, interval), app.abort_grading(uuid),
  app.record_witness_verdict(uuid, uuid, public.verdict_enum, text), app.record_vouch(uuid, uuid, integer),
  app.note_grading_request(uuid, uuid, integer), app.decide_submission(uuid, uuid, text, text) from public;

grant execute on function app.begin_grading(uuid, boolean, interval), app.abort_grading(uuid),
  app.record_witness_verdict(uuid, uuid, public.verdict_enum, text), app.record_vouch(uuid, uuid, integer),
  app.note_grading_request(uuid, uuid, integer), app.decide_submission(uuid, uuid, text, text) to service_role;
