-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- Guard and validation triggers: the clear errors that close every escape hatch, updated_at, the auth.users mirror.
-- Every function, trigger and grant here is this file's alone; numbered migrations hold tables,
-- types, indexes, RLS and policies.

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
set search_path = ''
as $$
  select current_user in ('service_role', 'postgres', 'supabase_admin')
    or coalesce((select r.rolsuper from pg_catalog.pg_roles r where r.rolname = current_user), false)
$$;

-- Raises a clear error for a change that only the service may make.
create or replace function private.refuse(message text) returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = '42501', message = message,
    hint = 'This change is made only by the Threativator service.';
end
$$;

-- Keeps updated_at current on every update.
create or replace function app.touch_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- -----------------------------------------------------------------------------
-- auth.users -> public.users
-- -----------------------------------------------------------------------------
-- Creates the profile row for a new Supabase Auth user and keeps its email in step.
create or replace function app.sync_auth_user() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.email is null then
    raise exception 'Threativator accounts need an email address';
  end if;
  insert into public.users (id, email) values (new.id, new.email)
  on conflict (id) do update set email = excluded.email;
  return new;
end
$$;

-- -----------------------------------------------------------------------------
-- users
-- -----------------------------------------------------------------------------
-- Money and Stripe fields are the ledger's; a user edits only their profile.
create or replace function app.guard_users() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if private.is_privileged() then
    return new;
  end if;
  if new.id is distinct from old.id
     or new.email is distinct from old.email
     or new.stripe_customer_id is distinct from old.stripe_customer_id
     or new.holding_cell_balance is distinct from old.holding_cell_balance
     or new.created_at is distinct from old.created_at
     or new.leaving_requested_at is distinct from old.leaving_requested_at
     or new.erased_at is distinct from old.erased_at then
    perform private.refuse('holding cell balance, Stripe customer and email are managed by the service');
  end if;
  -- The name the targets would read is the one the goals were made under.
  if new.display_name is distinct from old.display_name and private.user_is_committed(old.id) then
    perform private.refuse('your display name cannot be changed while you have an active goal or a pending consequence');
  end if;
  return new;
end
$$;

-- True while the user has an active goal or a consequence not yet carried out.
create or replace function private.user_is_committed(p_user_id uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from public.goals g where g.user_id = p_user_id and g.status = 'active')
      or exists (select 1 from public.consequences c
                 where c.user_id = p_user_id and c.execution_status in ('held', 'pending', 'executing'))
$$;

-- -----------------------------------------------------------------------------
-- goals
-- -----------------------------------------------------------------------------
-- A user drafts a goal; the service activates and closes it. Once active, the
-- terms of the bet are fixed.
create or replace function app.guard_goals() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if private.is_privileged() then
    return coalesce(new, old);
  end if;
  if tg_op = 'INSERT' then
    if new.status <> 'draft' or new.activated_at is not null or new.closed_at is not null then
      perform private.refuse('a goal is created as a draft and activated by the service');
    end if;
    return new;
  elsif tg_op = 'DELETE' then
    if old.status <> 'draft' then
      perform private.refuse('only a draft goal can be deleted; this goal is ' || old.status);
    end if;
    return old;
  end if;
  if new.user_id is distinct from old.user_id then
    perform private.refuse('a goal cannot be moved to another user');
  end if;
  if new.status is distinct from old.status
     or new.activated_at is distinct from old.activated_at
     or new.closed_at is distinct from old.closed_at then
    perform private.refuse('a goal''s status changes only through the service');
  end if;
  if old.status <> 'draft' and (
       new.monetary_stake is distinct from old.monetary_stake
       or new.final_deadline is distinct from old.final_deadline
       or new.referee_type is distinct from old.referee_type
       or new.witness_contact_id is distinct from old.witness_contact_id
       or new.charity_destination is distinct from old.charity_destination
       or new.minor_kompromat_id is distinct from old.minor_kompromat_id
       or new.major_kompromat_id is distinct from old.major_kompromat_id
       or new.grading_rubric is distinct from old.grading_rubric
       or new.proof_challenge is distinct from old.proof_challenge
       or new.title is distinct from old.title) then
    perform private.refuse('the goal is ' || old.status
      || ': its title, stake, deadline, referee, rubric, challenge, charity and kompromat cannot be changed');
  end if;
  return new;
end
$$;

-- The witness is one of the owner's witness contacts; kompromat is the owner's,
-- of the right severity; no checkpoint lies after the final deadline.
create or replace function app.validate_goal() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.witness_contact_id is not null and not exists (
       select 1 from public.contacts c
       where c.id = new.witness_contact_id and c.user_id = new.user_id
         and 'witness' = any (c.role)) then
    raise exception using errcode = '23514',
      message = 'the goal''s witness must be one of your contacts with the witness role';
  end if;
  if new.minor_kompromat_id is not null and not exists (
       select 1 from public.kompromat k
       where k.id = new.minor_kompromat_id and k.user_id = new.user_id and k.severity = 'minor') then
    raise exception using errcode = '23514',
      message = 'the goal''s minor kompromat must be your own kompromat of minor severity';
  end if;
  if new.major_kompromat_id is not null and not exists (
       select 1 from public.kompromat k
       where k.id = new.major_kompromat_id and k.user_id = new.user_id and k.severity = 'major') then
    raise exception using errcode = '23514',
      message = 'the goal''s major kompromat must be your own kompromat of major severity';
  end if;
  if tg_op = 'UPDATE' and new.final_deadline is distinct from old.final_deadline and exists (
       select 1 from public.checkpoints cp
       where cp.goal_id = new.id and cp.deadline > new.final_deadline) then
    raise exception using errcode = '23514',
      message = 'a checkpoint deadline must not be after the goal''s final deadline';
  end if;
  return new;
end
$$;

-- -----------------------------------------------------------------------------
-- checkpoints
-- -----------------------------------------------------------------------------
-- Checkpoints are planned while the goal is a draft; afterwards only the
-- service completes or misses them.
create or replace function app.guard_checkpoints() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_goal_status public.goal_status;
begin
  if private.is_privileged() then
    return coalesce(new, old);
  end if;
  select g.status into v_goal_status from public.goals g
  where g.id = coalesce(new.goal_id, old.goal_id);

  if tg_op = 'INSERT' then
    if new.status <> 'pending' or new.is_final or new.completed_at is not null or new.missed_at is not null
       or new.proof_phrase is not null or new.stake_cents is not null then
      perform private.refuse('a checkpoint is created pending; the service completes or misses it');
    end if;
    if v_goal_status is distinct from 'draft' then
      perform private.refuse('checkpoints can be added only while the goal is a draft');
    end if;
    return new;
  elsif tg_op = 'DELETE' then
    if v_goal_status is distinct from 'draft' then
      perform private.refuse('checkpoints of a goal that is not a draft cannot be deleted');
    end if;
    return old;
  end if;

  if new.status is distinct from old.status
     or new.is_final is distinct from old.is_final
     or new.completed_at is distinct from old.completed_at
     or new.missed_at is distinct from old.missed_at then
    perform private.refuse('a checkpoint is completed or missed only by the service');
  end if;
  if new.stake_cents is distinct from old.stake_cents then
    perform private.refuse('what a checkpoint puts at stake is fixed by the service');
  end if;
  if new.proof_phrase is distinct from old.proof_phrase then
    perform private.refuse('a checkpoint''s challenge phrase is issued only by the service');
  end if;
  if new.goal_id is distinct from old.goal_id then
    perform private.refuse('a checkpoint cannot be moved to another goal');
  end if;
  if v_goal_status <> 'draft' and (
       new.deadline is distinct from old.deadline
       or new.order_position is distinct from old.order_position
       or new.requirements is distinct from old.requirements) then
    perform private.refuse('the goal is ' || v_goal_status
      || ': its checkpoints'' deadlines, order and requirements cannot be changed');
  end if;
  return new;
end
$$;

-- A checkpoint's deadline lies within its goal.
create or replace function app.validate_checkpoint() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_final timestamptz;
begin
  select g.final_deadline into v_final from public.goals g where g.id = new.goal_id;
  if new.deadline > v_final then
    raise exception using errcode = '23514',
      message = 'a checkpoint deadline must not be after the goal''s final deadline';
  end if;
  return new;
end
$$;

-- -----------------------------------------------------------------------------
-- submissions
-- -----------------------------------------------------------------------------
-- Proof is fixed once made, stamped with the server's clock, and graded only by
-- the grader.
create or replace function app.guard_submissions() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if private.is_privileged() then
    return new;
  end if;
  if tg_op = 'INSERT' then
    if new.status <> 'pending' or new.ai_analysis_result is not null
       or new.human_verdict is not null or new.graded_at is not null
       or new.captured_at is not null or new.proof_sha256 is not null or new.capture_blocked_at is not null
       or new.proof_phash is not null or new.proof_taken_at is not null or new.proof_taken_zoned is not null or new.proof_text_sha256 is not null
       or new.grading_attempts <> 0 or new.next_grading_at is not null then
      perform private.refuse('a submission''s grading fields are set only by the grader');
    end if;
    -- The server's clock, never the client's, decides whether proof was on time.
    new.submitted_at := now();
    return new;
  end if;
  if new.status is distinct from old.status
     or new.ai_analysis_result is distinct from old.ai_analysis_result
     or new.human_verdict is distinct from old.human_verdict
     or new.graded_at is distinct from old.graded_at
     or new.captured_at is distinct from old.captured_at
     or new.proof_sha256 is distinct from old.proof_sha256
     or new.proof_phash is distinct from old.proof_phash
     or new.proof_taken_at is distinct from old.proof_taken_at
     or new.proof_taken_zoned is distinct from old.proof_taken_zoned
     or new.proof_text_sha256 is distinct from old.proof_text_sha256
     or new.capture_blocked_at is distinct from old.capture_blocked_at
     or new.grading_attempts is distinct from old.grading_attempts
     or new.next_grading_at is distinct from old.next_grading_at then
    perform private.refuse('a submission''s grading fields are set only by the grader');
  end if;
  if new.checkpoint_id is distinct from old.checkpoint_id
     or new.user_id is distinct from old.user_id
     or new.submission_type is distinct from old.submission_type
     or new.file_path is distinct from old.file_path
     or new.external_url is distinct from old.external_url
     or new.submitted_at is distinct from old.submitted_at then
    perform private.refuse('a submission''s proof cannot be changed after it is made; submit again instead');
  end if;
  -- What a witness or an operator reads beside the proof cannot change under them.
  if new.description is distinct from old.description and old.status <> 'pending' then
    perform private.refuse('a submission''s description is frozen once it waits for a verdict; submit again instead');
  end if;
  return new;
end
$$;

-- Proof belongs to the goal's owner and to an open checkpoint of an active goal.
create or replace function app.validate_submission() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_owner uuid;
  v_goal_status public.goal_status;
  v_cp_status public.checkpoint_status;
  v_deadline timestamptz;
begin
  select g.user_id, g.status, cp.status, cp.deadline
    into v_owner, v_goal_status, v_cp_status, v_deadline
  from public.checkpoints cp join public.goals g on g.id = cp.goal_id
  where cp.id = new.checkpoint_id;
  if v_owner is distinct from new.user_id then
    raise exception using errcode = '23514',
      message = 'a submission must be made by the owner of the checkpoint''s goal';
  end if;
  if v_goal_status <> 'active' then
    raise exception using errcode = '23514',
      message = 'proof can be submitted only for an active goal';
  end if;
  if v_cp_status <> 'pending' then
    raise exception using errcode = '23514',
      message = 'this checkpoint is already ' || v_cp_status;
  end if;
  if new.submitted_at > v_deadline then
    raise exception using errcode = '23514',
      message = 'the checkpoint deadline has passed; late proof does not count';
  end if;
  return new;
end
$$;

-- -----------------------------------------------------------------------------
-- kompromat
-- -----------------------------------------------------------------------------
-- The vault writes kompromat; a user may only describe it, and may not pull it
-- out from under an active goal.
create or replace function app.guard_kompromat() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if private.is_privileged() then
    return coalesce(new, old);
  end if;
  if tg_op = 'DELETE' then
    if exists (select 1 from public.goals g
               where g.status = 'active'
                 and old.id in (g.minor_kompromat_id, g.major_kompromat_id)) then
      perform private.refuse('kompromat attached to an active goal cannot be deleted');
    end if;
    return old;
  end if;
  if new.user_id is distinct from old.user_id
     or new.file_path is distinct from old.file_path
     or new.original_filename is distinct from old.original_filename
     or new.file_type is distinct from old.file_type
     or new.severity is distinct from old.severity
     or new.encrypted_content is distinct from old.encrypted_content
     or new.key_id is distinct from old.key_id
     or new.size_bytes is distinct from old.size_bytes then
    perform private.refuse('kompromat content is written only by the vault; only its description can be edited');
  end if;
  return new;
end
$$;

-- -----------------------------------------------------------------------------
-- contacts
-- -----------------------------------------------------------------------------
-- True while a consequence not yet carried out is to be delivered to this contact.
create or replace function private.contact_awaits_consequence(p_contact_id uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from public.consequence_deliveries d
                 join public.consequences c on c.id = d.consequence_id
                 where d.contact_id = p_contact_id and c.execution_status in ('held', 'pending', 'executing'))
$$;

-- Verification is the contact's own act. While a user has an active goal, the
-- people who would receive its consequences cannot be quietly removed.
create or replace function app.guard_contacts() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_has_active_goal boolean;
begin
  if private.is_privileged() then
    return coalesce(new, old);
  end if;
  if tg_op = 'INSERT' then
    if new.verified or new.verified_at is not null or new.declined_at is not null then
      perform private.refuse('a contact verifies themselves through the link they are sent');
    end if;
    return new;
  end if;
  select exists (select 1 from public.goals g
                 where g.user_id = old.user_id and g.status = 'active')
    into v_has_active_goal;
  if (tg_op = 'DELETE' or new.email is distinct from old.email or new.name is distinct from old.name)
     and private.contact_awaits_consequence(old.id) then
    perform private.refuse('this contact is to receive a consequence that has not been carried out yet');
  end if;
  if tg_op = 'DELETE' then
    if v_has_active_goal then
      perform private.refuse('contacts cannot be removed while you have an active goal');
    end if;
    return old;
  end if;
  if new.user_id is distinct from old.user_id
     or new.verified is distinct from old.verified
     or new.verified_at is distinct from old.verified_at
     or new.declined_at is distinct from old.declined_at then
    perform private.refuse('a contact verifies or declines themselves through the link they are sent');
  end if;
  if v_has_active_goal and (new.email is distinct from old.email or new.role is distinct from old.role) then
    perform private.refuse('a contact''s email and role cannot be changed while you have an active goal');
  end if;
  if new.email is distinct from old.email then
    -- A new address is a new person until they confirm it.
    new.verified := false;
    new.verified_at := null;
    new.declined_at := null;
  end if;
  return new;
end
$$;

create or replace trigger on_auth_user_saved
  after insert or update of email on auth.users
  for each row execute function app.sync_auth_user();

create or replace trigger users_guard before update on public.users
  for each row execute function app.guard_users();

create or replace trigger users_touch before update on public.users
  for each row execute function app.touch_updated_at();

create or replace trigger goals_guard before insert or update or delete on public.goals
  for each row when (not private.is_privileged()) execute function app.guard_goals();

create or replace trigger goals_validate before insert or update on public.goals
  for each row execute function app.validate_goal();

create or replace trigger goals_touch before update on public.goals
  for each row execute function app.touch_updated_at();

create or replace trigger checkpoints_guard before insert or update or delete on public.checkpoints
  for each row when (not private.is_privileged()) execute function app.guard_checkpoints();

create or replace trigger checkpoints_validate before insert or update of deadline, goal_id on public.checkpoints
  for each row execute function app.validate_checkpoint();

create or replace trigger checkpoints_touch before update on public.checkpoints
  for each row execute function app.touch_updated_at();

create or replace trigger submissions_guard before insert or update on public.submissions
  for each row when (not private.is_privileged()) execute function app.guard_submissions();

-- Runs after the guard (trigger names sort) so submitted_at is the server's.
create or replace trigger submissions_validate before insert on public.submissions
  for each row execute function app.validate_submission();

create or replace trigger submissions_touch before update on public.submissions
  for each row execute function app.touch_updated_at();

create or replace trigger kompromat_guard before update or delete on public.kompromat
  for each row execute function app.guard_kompromat();

create or replace trigger kompromat_touch before update on public.kompromat
  for each row execute function app.touch_updated_at();

create or replace trigger contacts_guard before insert or update or delete on public.contacts
  for each row execute function app.guard_contacts();

create or replace trigger contacts_touch before update on public.contacts
  for each row execute function app.touch_updated_at();

-- -----------------------------------------------------------------------------
-- consequences
-- -----------------------------------------------------------------------------
create or replace trigger consequences_touch before update on public.consequences
  for each row execute function app.touch_updated_at();

-- -----------------------------------------------------------------------------
-- Triggers
-- -----------------------------------------------------------------------------
create or replace trigger withdrawals_touch before update on public.withdrawals
  for each row execute function app.touch_updated_at();

create or replace trigger withdrawal_refunds_touch before update on public.withdrawal_refunds
  for each row execute function app.touch_updated_at();

-- -----------------------------------------------------------------------------
-- Triggers
-- -----------------------------------------------------------------------------
create or replace trigger x_connections_touch before update on public.x_connections
  for each row execute function app.touch_updated_at();

-- -----------------------------------------------------------------------------
-- Triggers
-- -----------------------------------------------------------------------------
create or replace trigger notifications_touch before update on public.notifications
  for each row execute function app.touch_updated_at();

create or replace trigger consequence_deliveries_touch before update on public.consequence_deliveries
  for each row execute function app.touch_updated_at();

-- Guard triggers run as the caller, so the caller must be able to name these.
revoke all on function private.is_privileged(), private.refuse(text), private.contact_awaits_consequence(uuid),
  private.user_is_committed(uuid) from public;

-- The guards run as the user who writes (invoker rights): authenticated and the service. anon writes
-- nothing directly, and its token-gated calls run as their definer.
grant execute on function private.is_privileged(), private.refuse(text), private.contact_awaits_consequence(uuid),
  private.user_is_committed(uuid)
  to authenticated, service_role;
revoke execute on function private.is_privileged(), private.refuse(text), private.contact_awaits_consequence(uuid),
  private.user_is_committed(uuid)
  from anon;
