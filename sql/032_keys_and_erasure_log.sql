-- =============================================================================
-- Erasure that reaches backups.
--   master_keys: when each KOMPROMAT_KEYS master key was first seen, became the
--   active one, was retired (a newer one took over) and may be destroyed (once
--   BACKUP_RETENTION_DAYS have passed since: every backup made while it wrapped
--   a user's data key has expired by then). No key material is stored here.
--   erasure_log: the tombstone ids of erased accounts, and when; nothing else.
--   A restore from a backup re-applies them (threativator reapply-erasures):
--   an account's tombstone id is derived from its id and erasure_salt, which
--   every backup holds, so the restored account is found without the log
--   naming anyone.
-- =============================================================================
create table if not exists public.master_keys (
  key_id text primary key constraint master_keys_key_id_length check (char_length(key_id) between 1 and 64),
  first_seen_at timestamptz not null default now(),
  active_since timestamptz,
  retired_at timestamptz,
  destroy_after timestamptz,
  removed_at timestamptz
);

create table if not exists public.erasure_log (
  tombstone_id uuid primary key,
  erased_at timestamptz not null default now(),
  exported_at timestamptz
);
create index if not exists erasure_log_unexported_idx on public.erasure_log (erased_at) where exported_at is null;

create table if not exists app.erasure_salt (
  only_row boolean primary key default true constraint erasure_salt_one_row check (only_row),
  salt bytea not null
);
insert into app.erasure_salt (salt) select decode(md5(gen_random_uuid()::text) || md5(gen_random_uuid()::text), 'hex')
on conflict (only_row) do nothing;
revoke all on app.erasure_salt from public;

alter table public.master_keys enable row level security;
alter table public.master_keys force row level security;
alter table public.erasure_log enable row level security;
alter table public.erasure_log force row level security;
revoke all on public.master_keys, public.erasure_log from anon, authenticated;
