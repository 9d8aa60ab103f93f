-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- Contact verification, reminders, unsubscribe: queued in the transaction that changes the state.
-- Every function, trigger and grant here is this file's alone; numbered migrations hold tables,
-- types, indexes, RLS and policies.

-- Queues one notice in the caller's transaction: the transactional outbox. The
-- row holds the type and ids (plus facts such as an outcome); its text is
-- rendered when it is sent. Unique by dedupe key, so asking twice queues once.
-- Reminders to a muted user and anything to a declined contact are suppressed.
create or replace function app.queue_notification(
  p_type public.notification_type, p_user_id uuid, p_subject_id uuid, p_data jsonb,
  p_contact_id uuid default null, p_dedupe_key text default null
) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_status public.notification_status := 'queued';
  v_id uuid;
begin
  if p_type = 'deadline_reminder'
     and exists (select 1 from public.users u where u.id = p_user_id and u.mute_reminders) then
    v_status := 'suppressed';
  end if;
  if p_contact_id is not null
     and exists (select 1 from public.contacts c where c.id = p_contact_id and c.declined_at is not null) then
    v_status := 'suppressed';
  end if;
  insert into public.notifications (type, user_id, recipient_contact_id, subject_id, dedupe_key, template_data, status)
  values (p_type, p_user_id, p_contact_id, p_subject_id,
          coalesce(p_dedupe_key, p_type || ':' || p_subject_id || ':' || coalesce(p_contact_id, p_user_id)),
          p_data, v_status)
  on conflict (dedupe_key) do nothing
  returning id into v_id;
  return v_id;
end
$$;

-- A new contact, or one whose address changed, is asked to confirm it.
create or replace function app.queue_contact_verification() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.verified or new.declined_at is not null then
    return new;
  end if;
  if tg_op = 'UPDATE' and new.email is not distinct from old.email then
    return new;
  end if;
  insert into public.notifications (type, user_id, recipient_contact_id, subject_id, dedupe_key, template_data)
  values ('contact_verification', new.user_id, new.id, new.id,
          'contact_verification:' || new.id || ':' || md5(new.email),
          jsonb_build_object('contact_id', new.id))
  on conflict (dedupe_key) do nothing;
  return new;
end
$$;

-- The token columns are the service's, like verification itself.
create or replace function app.guard_contact_tokens() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if private.is_privileged() then
    return new;
  end if;
  if new.verification_token_hash is distinct from (case when tg_op = 'UPDATE' then old.verification_token_hash end)
     or new.verification_expires_at is distinct from (case when tg_op = 'UPDATE' then old.verification_expires_at end) then
    perform private.refuse('a contact verifies themselves through the link they are sent');
  end if;
  return new;
end
$$;

create or replace function app.guard_user_tokens() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if not private.is_privileged() and new.unsubscribe_token_hash is distinct from old.unsubscribe_token_hash then
    perform private.refuse('holding cell balance, Stripe customer and email are managed by the service');
  end if;
  return new;
end
$$;

-- -----------------------------------------------------------------------------
-- Link confirmations that anon may call with a token (through PostgREST rpc).
-- The exposed wrappers run as the caller; the definer work lives in private.
-- -----------------------------------------------------------------------------
-- Confirms (or declines) the one contact whose unexpired token this is, once.
create or replace function private.answer_contact_verification(p_token text, p_decline boolean) returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  v_contact public.contacts;
begin
  if p_token is null or char_length(p_token) < 16 then
    raise exception using errcode = '22023', message = 'a verification token is required';
  end if;
  select * into v_contact from public.contacts
  where verification_token_hash = encode(sha256(convert_to(p_token, 'UTF8')), 'hex')
  for update;
  if not found then
    raise exception using errcode = 'P0002', message = 'this link is not valid or was already used';
  end if;
  if v_contact.verification_expires_at < now() then
    raise exception using errcode = '22023', message = 'this link has expired; ask for a new one';
  end if;
  update public.contacts
  set verified = not p_decline,
      verified_at = case when p_decline then null else now() end,
      declined_at = case when p_decline then now() else null end,
      verification_token_hash = null,
      verification_expires_at = null
  where id = v_contact.id;
  perform app.audit('contact', v_contact.id, case when p_decline then 'declined' else 'verified' end,
    v_contact.user_id, '{}'::jsonb);
  return case when p_decline then 'declined' else 'verified' end;
end
$$;

-- Mutes reminders for the user whose unsubscribe token this is.
create or replace function private.unsubscribe_reminders(p_token text) returns boolean
language plpgsql security definer
set search_path = ''
as $$
begin
  if p_token is null or char_length(p_token) < 16 then
    raise exception using errcode = '22023', message = 'an unsubscribe token is required';
  end if;
  update public.users set mute_reminders = true
  where unsubscribe_token_hash = encode(sha256(convert_to(p_token, 'UTF8')), 'hex');
  if not found then
    raise exception using errcode = 'P0002', message = 'this unsubscribe link is not valid';
  end if;
  return true;
end
$$;

create or replace function public.confirm_contact(token text) returns text
language sql security invoker
set search_path = ''
as $$ select private.answer_contact_verification(token, false) $$;

create or replace function public.decline_contact(token text) returns text
language sql security invoker
set search_path = ''
as $$ select private.answer_contact_verification(token, true) $$;

create or replace function public.unsubscribe_reminders(token text) returns boolean
language sql security invoker
set search_path = ''
as $$ select private.unsubscribe_reminders(token) $$;

-- -----------------------------------------------------------------------------
-- State functions
-- -----------------------------------------------------------------------------
-- Queues one deadline reminder per open checkpoint per band (3 days, 1 day,
-- 1 hour before), each exactly once; a band the scheduler slept through is
-- skipped rather than sent late. Muted users and closed checkpoints get none.
create or replace function app.queue_reminders(p_now timestamptz default now()) returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  v_count integer;
begin
  with bands(name, starts, ends) as (
    values ('3d', interval '3 days', interval '1 day'),
           ('1d', interval '1 day', interval '1 hour'),
           ('1h', interval '1 hour', interval '0')
  ), due as (
    select cp.id as checkpoint_id, cp.deadline, cp.title as checkpoint_title, cp.is_final,
           g.id as goal_id, g.title as goal_title, g.user_id, b.name as band
    from public.checkpoints cp
    join public.goals g on g.id = cp.goal_id and g.status = 'active'
    join public.users u on u.id = g.user_id and not u.mute_reminders
    join bands b on p_now >= cp.deadline - b.starts and p_now < cp.deadline - b.ends
    where cp.status = 'pending' and cp.deadline > p_now and cp.deadline <= p_now + interval '3 days'
  )
  insert into public.notifications (type, user_id, subject_id, dedupe_key, template_data)
  select 'deadline_reminder', d.user_id, d.checkpoint_id, 'deadline_reminder:' || d.checkpoint_id || ':' || d.band,
         jsonb_build_object('checkpoint_id', d.checkpoint_id, 'goal_id', d.goal_id, 'goal_title', d.goal_title,
                            'checkpoint_title', d.checkpoint_title, 'deadline', d.deadline, 'window', d.band,
                            'is_final', d.is_final)
  from due d
  on conflict (dedupe_key) do nothing;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

create or replace trigger contacts_queue_verification after insert or update of email on public.contacts
  for each row execute function app.queue_contact_verification();

create or replace trigger contacts_guard_tokens before insert or update on public.contacts
  for each row execute function app.guard_contact_tokens();

create or replace trigger users_guard_tokens before update on public.users
  for each row execute function app.guard_user_tokens();

revoke all on function private.answer_contact_verification(text, boolean), private.unsubscribe_reminders(text)
  from public;

grant execute on function private.answer_contact_verification(text, boolean), private.unsubscribe_reminders(text)
  to anon, authenticated, service_role;

revoke all on function public.confirm_contact(text), public.decline_contact(text), public.unsubscribe_reminders(text)
  from public;

grant execute on function public.confirm_contact(text), public.decline_contact(text), public.unsubscribe_reminders(text)
  to anon, authenticated, service_role;

revoke all on function app.queue_notification(public.notification_type, uuid, uuid, jsonb, uuid, text) from public;
grant execute on function app.queue_notification(public.notification_type, uuid, uuid, jsonb, uuid, text) to service_role;

revoke all on function app.queue_reminders(timestamptz) from public;

grant execute on function app.queue_reminders(timestamptz) to service_role;
