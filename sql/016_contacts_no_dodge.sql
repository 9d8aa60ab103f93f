-- =============================================================================
-- Contacts cannot stall, fake or escape a consequence.
-- - Addresses are checked strictly where the frontend writes them. Rows written
--   before this check are not re-validated here; the sender refuses them alone.
-- - Declined means never again: the declined mailbox (normalised as vouching
--   normalises it, private.mailbox) is suppressed for that user for good.
-- =============================================================================
alter table public.contacts add constraint contacts_email_is_an_address check (
  char_length(email) <= 254
  and email ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$'
) not valid;

create table public.contact_suppressions (
  user_id uuid not null references public.users (id) on delete cascade,
  mailbox text not null check (char_length(mailbox) <= 254),
  declined_at timestamptz not null default now(),
  primary key (user_id, mailbox)
);
comment on table public.contact_suppressions is
  'Mailboxes (normalised) that declined to be a user''s contact; never asked or mailed again for that user.';
alter table public.contact_suppressions enable row level security;
alter table public.contact_suppressions force row level security;
grant all on public.contact_suppressions to service_role;

-- Contacts declined before this migration stay declined under any spelling.
-- (The normalisation is written out here: repeatable functions are applied after migrations.)
insert into public.contact_suppressions (user_id, mailbox, declined_at)
select user_id,
       case when split_part(lower(email), '@', 2) in ('gmail.com', 'googlemail.com')
            then replace(split_part(split_part(lower(email), '@', 1), '+', 1), '.', '') || '@gmail.com'
            else split_part(split_part(lower(email), '@', 1), '+', 1) || '@' || split_part(lower(email), '@', 2)
       end,
       min(declined_at)
from public.contacts where declined_at is not null
group by 1, 2
on conflict do nothing;

-- Verification emails sent per user per day are counted from here.
create index notifications_verifications_by_user on public.notifications (user_id, sent_at)
  where type = 'contact_verification';
