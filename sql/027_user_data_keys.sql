-- =============================================================================
-- Per-user data keys (issue 19): kompromat is sealed under its owner's own key,
-- wrapped by a KOMPROMAT_KEYS master key. Erasure deletes the wrapped key, so a
-- copy of the ciphertext kept anywhere (backups, WAL) no longer opens.
-- No foreign key to users: the key goes before the account is re-keyed to its
-- tombstone, and a key with no account is unusable anyway.
-- =============================================================================
create table public.user_data_keys (
  user_id uuid primary key,
  key_id text not null check (char_length(key_id) between 1 and 64),
  wrapped bytea not null check (octet_length(wrapped) between 28 and 128),
  created_at timestamptz not null default now()
);

revoke all on public.user_data_keys from anon, authenticated;
grant all on public.user_data_keys to service_role;
alter table public.user_data_keys enable row level security;
alter table public.user_data_keys force row level security;
