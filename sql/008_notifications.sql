-- =============================================================================
-- Notifications: every email the product sends is a row first, unique by its
-- dedupe key, moving queued -> sending -> sent | failed (or suppressed when the
-- recipient opted out). Contact verification and reminder unsubscribes.
-- =============================================================================

-- -----------------------------------------------------------------------------
-- Types
-- -----------------------------------------------------------------------------
create type public.notification_type as enum (
  'deadline_reminder', 'submission_result', 'witness_request', 'contact_verification',
  'consequence_notification', 'spared', 'stake_released'
);

create type public.notification_status as enum ('queued', 'sending', 'sent', 'failed', 'suppressed');

-- -----------------------------------------------------------------------------
-- Tables
-- -----------------------------------------------------------------------------
create table public.notifications (
  id uuid primary key default gen_random_uuid(),
  type public.notification_type not null,
  user_id uuid not null references public.users (id) on delete cascade,
  recipient_contact_id uuid references public.contacts (id) on delete set null,
  subject_id uuid,
  dedupe_key text not null constraint notifications_dedupe_key_unique unique
    check (char_length(dedupe_key) between 1 and 300),
  -- Ids and wording only: links with tokens are minted at send time, never stored.
  template_data jsonb not null default '{}'::jsonb,
  status public.notification_status not null default 'queued',
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  lease_expires_at timestamptz,
  provider_message_id text,
  last_error text,
  created_at timestamptz not null default now(),
  sent_at timestamptz,
  updated_at timestamptz not null default now()
);

create index notifications_user_idx on public.notifications (user_id);
create index notifications_due_idx on public.notifications (next_attempt_at)
  where status in ('queued', 'sending');

-- What make dev records instead of calling a provider that has no key.
create table public.dev_outbox (
  id bigint generated always as identity primary key,
  channel text not null,
  recipient text,
  summary text not null,
  payload jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);

alter table public.contacts add column verification_token_hash text unique;
alter table public.contacts add column verification_expires_at timestamptz;
alter table public.users add column unsubscribe_token_hash text unique;

-- -----------------------------------------------------------------------------
-- Triggers
-- -----------------------------------------------------------------------------
create trigger notifications_touch before update on public.notifications
  for each row execute function app.touch_updated_at();

-- A new contact, or one whose address changed, is asked to confirm it.
create function app.queue_contact_verification() returns trigger
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

create trigger contacts_queue_verification after insert or update of email on public.contacts
  for each row execute function app.queue_contact_verification();

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

create trigger contacts_guard_tokens before insert or update on public.contacts
  for each row execute function app.guard_contact_tokens();

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

create trigger users_guard_tokens before update on public.users
  for each row execute function app.guard_user_tokens();

-- -----------------------------------------------------------------------------
-- RLS: users read their own notifications; only the service writes them.
-- -----------------------------------------------------------------------------
revoke all on public.notifications, public.dev_outbox from anon, authenticated;
grant select (id, type, user_id, subject_id, status, created_at, sent_at) on public.notifications to authenticated;
grant all on public.notifications, public.dev_outbox to service_role;
revoke select on public.contacts from authenticated;
grant select (id, user_id, name, email, role, verified, verified_at, declined_at, created_at, updated_at)
  on public.contacts to authenticated;
revoke select on public.users from authenticated;
grant select (id, email, display_name, time_zone, stripe_customer_id, holding_cell_balance, onboarding_completed,
              mute_reminders, created_at, updated_at)
  on public.users to authenticated;

alter table public.notifications enable row level security;
alter table public.notifications force row level security;
alter table public.dev_outbox enable row level security;
alter table public.dev_outbox force row level security;

create policy "Users can read their own notifications."
  on public.notifications for select to authenticated
  using (user_id = (select auth.uid()));

-- -----------------------------------------------------------------------------
-- Link confirmations that anon may call with a token (through PostgREST rpc).
-- The exposed wrappers run as the caller; the definer work lives in private.
-- -----------------------------------------------------------------------------

-- Confirms (or declines) the one contact whose unexpired token this is, once.
create function private.answer_contact_verification(p_token text, p_decline boolean) returns text
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
create function private.unsubscribe_reminders(p_token text) returns boolean
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

create function public.confirm_contact(token text) returns text
language sql security invoker
set search_path = ''
as $$ select private.answer_contact_verification(token, false) $$;

create function public.decline_contact(token text) returns text
language sql security invoker
set search_path = ''
as $$ select private.answer_contact_verification(token, true) $$;

create function public.unsubscribe_reminders(token text) returns boolean
language sql security invoker
set search_path = ''
as $$ select private.unsubscribe_reminders(token) $$;

revoke all on function private.answer_contact_verification(text, boolean), private.unsubscribe_reminders(text)
  from public;
grant execute on function private.answer_contact_verification(text, boolean), private.unsubscribe_reminders(text)
  to anon, authenticated, service_role;
grant usage on schema private to anon;
revoke all on function public.confirm_contact(text), public.decline_contact(text), public.unsubscribe_reminders(text)
  from public;
grant execute on function public.confirm_contact(text), public.decline_contact(text), public.unsubscribe_reminders(text)
  to anon, authenticated, service_role;

-- -----------------------------------------------------------------------------
-- State functions
-- -----------------------------------------------------------------------------

-- Queues one deadline reminder per open checkpoint per band (3 days, 1 day,
-- 1 hour before), each exactly once; a band the scheduler slept through is
-- skipped rather than sent late. Muted users and closed checkpoints get none.
create function app.queue_reminders(p_now timestamptz default now()) returns integer
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

revoke all on function app.queue_reminders(timestamptz) from public;
grant execute on function app.queue_reminders(timestamptz) to service_role;
