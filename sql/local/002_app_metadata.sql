-- Supabase's auth.users carries app_metadata, which only the service key can set and which
-- Supabase copies into the user's JWT: operators are users whose app_metadata.role is 'operator'.
alter table auth.users add column if not exists raw_app_meta_data jsonb not null default '{}'::jsonb;
