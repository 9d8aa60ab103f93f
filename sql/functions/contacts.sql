-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- Contacts are other people: never the owner's own mailbox, never mailed again once declined,
-- and asked to confirm at a bounded rate.

-- An address reduced to the mailbox it reaches: case, +tags and (at Gmail) dots
-- do not make a different person. The one normalisation: vouching, witnesses,
-- targets and suppression all use it.
create or replace function private.mailbox(p_email text) returns text
language sql immutable
set search_path = ''
as $$
  select case
    when split_part(lower(p_email), '@', 2) in ('gmail.com', 'googlemail.com')
      then replace(split_part(split_part(lower(p_email), '@', 1), '+', 1), '.', '') || '@gmail.com'
    else split_part(split_part(lower(p_email), '@', 1), '+', 1) || '@' || split_part(lower(p_email), '@', 2)
  end
$$;

-- A witness or target with the owner's own mailbox is refused; an address the
-- owner's contact once declined comes back declined, under any spelling.
create or replace function app.guard_contact_address() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_owner_email text;
begin
  select u.email into v_owner_email from public.users u where u.id = new.user_id;
  if private.mailbox(new.email) = private.mailbox(v_owner_email) then
    raise exception using errcode = '42501',
      message = 'a witness or consequence target must be someone else: this address reaches your own mailbox';
  end if;
  if exists (select 1 from public.contact_suppressions s
             where s.user_id = new.user_id and s.mailbox = private.mailbox(new.email)) then
    new.verified := false;
    new.verified_at := null;
    new.declined_at := coalesce(new.declined_at, now());
  end if;
  return new;
end
$$;

-- Declining suppresses the mailbox for this user for good.
create or replace function app.suppress_declined_contact() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.declined_at is not null and (tg_op = 'INSERT' or old.declined_at is null) then
    insert into public.contact_suppressions (user_id, mailbox, declined_at)
    values (new.user_id, private.mailbox(new.email), new.declined_at)
    on conflict do nothing;
  end if;
  return new;
end
$$;

-- Claims one notification for sending. Verification emails are limited per user
-- per day (p_invites_per_day): past the limit the row waits until the oldest
-- verification of the last day is a day old. The user's row is locked so that
-- concurrent senders count one after another.
create or replace function app.claim_notification(p_id uuid, p_lease interval, p_invites_per_day integer)
returns setof public.notifications
language plpgsql security definer
set search_path = ''
as $$
declare
  v_row public.notifications;
  v_sent integer;
  v_oldest timestamptz;
begin
  select * into v_row from public.notifications n
  where n.id = p_id
    and ((n.status = 'queued' and n.next_attempt_at <= now()) or (n.status = 'sending' and n.lease_expires_at < now()));
  if not found then
    return;
  end if;
  if v_row.type = 'contact_verification' then
    perform 1 from public.users u where u.id = v_row.user_id for update;
    select count(*), min(coalesce(n.sent_at, now())) into v_sent, v_oldest
    from public.notifications n
    where n.user_id = v_row.user_id and n.type = 'contact_verification' and n.id <> p_id
      and ((n.status = 'sent' and n.sent_at > now() - interval '1 day')
           or (n.status = 'sending' and n.lease_expires_at >= now()));
    if v_sent >= p_invites_per_day then
      update public.notifications n
      set next_attempt_at = greatest(now(), v_oldest + interval '1 day')
      where n.id = p_id and n.status = 'queued';
      return;
    end if;
  end if;
  return query
    update public.notifications n
    set status = 'sending', attempts = n.attempts + 1, lease_expires_at = now() + p_lease
    where n.id = p_id
      and ((n.status = 'queued' and n.next_attempt_at <= now()) or (n.status = 'sending' and n.lease_expires_at < now()))
    returning n.*;
end
$$;

create or replace trigger contacts_guard_address before insert or update of email on public.contacts
  for each row execute function app.guard_contact_address();

create or replace trigger contacts_suppress_declined after insert or update of declined_at on public.contacts
  for each row execute function app.suppress_declined_contact();

revoke all on function private.mailbox(text), app.guard_contact_address(), app.suppress_declined_contact(),
  app.claim_notification(uuid, interval, integer) from public;
grant execute on function private.mailbox(text), app.claim_notification(uuid, interval, integer) to service_role;
