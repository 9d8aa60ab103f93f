-- =============================================================================
-- Detection speed: the per-row helpers the deadline scan calls are plain SQL
-- without SET clauses, so the planner inlines them (a SET clause prevents
-- inlining). They are not security definer and name everything fully
-- qualified, so the caller's search_path cannot change what they read.
-- Guard triggers are skipped for privileged writers by a WHEN clause instead
-- of a PL/pgSQL call per row.
-- =============================================================================

create or replace function private.is_privileged() returns boolean
language sql stable
as $$
  select current_user in ('service_role', 'postgres', 'supabase_admin')
    or coalesce((select r.rolsuper from pg_catalog.pg_roles r where r.rolname = current_user), false)
$$;

create or replace function private.random_u32() returns bigint
language sql volatile
as $$
  select ('x' || substr(replace(pg_catalog.gen_random_uuid()::text, '-', ''), 1, 8))::bit(32)::bigint
$$;

create or replace function private.has_protecting_submission(p_checkpoint_id uuid, p_deadline timestamptz,
                                                             p_grace interval) returns boolean
language sql stable
as $$
  select exists (
    select 1 from public.submissions s
    where s.checkpoint_id = p_checkpoint_id and s.submitted_at <= p_deadline
      and (s.status = 'passed'
           or (s.status in ('pending', 'grading', 'awaiting_witness', 'needs_review')
               and pg_catalog.now() < p_deadline + p_grace))
  )
$$;

-- Guards run only for the API roles; the service's bulk changes skip them.
drop trigger checkpoints_guard on public.checkpoints;
create trigger checkpoints_guard before insert or update or delete on public.checkpoints
  for each row when (not private.is_privileged()) execute function app.guard_checkpoints();
drop trigger goals_guard on public.goals;
create trigger goals_guard before insert or update or delete on public.goals
  for each row when (not private.is_privileged()) execute function app.guard_goals();
drop trigger submissions_guard on public.submissions;
create trigger submissions_guard before insert or update on public.submissions
  for each row when (not private.is_privileged()) execute function app.guard_submissions();
