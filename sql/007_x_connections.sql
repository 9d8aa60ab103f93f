-- =============================================================================
-- X (Twitter) connections: OAuth 2.0 tokens sealed by the application's vault,
-- and the short-lived, single-use PKCE state of a connection in progress.
-- =============================================================================

-- -----------------------------------------------------------------------------
-- Tables
-- -----------------------------------------------------------------------------
create table public.x_connections (
  user_id uuid primary key references public.users (id) on delete cascade,
  x_user_id text,
  access_token_sealed bytea not null,
  refresh_token_sealed bytea,
  key_id text not null,
  scope text,
  expires_at timestamptz not null,
  connected_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.x_oauth_states (
  state_hash text primary key,
  user_id uuid not null references public.users (id) on delete cascade,
  code_verifier_sealed bytea not null,
  key_id text not null,
  expires_at timestamptz not null,
  created_at timestamptz not null default now()
);

create index x_oauth_states_user_idx on public.x_oauth_states (user_id);
create index x_oauth_states_expiry_idx on public.x_oauth_states (expires_at);

-- -----------------------------------------------------------------------------
-- Triggers
-- -----------------------------------------------------------------------------
create trigger x_connections_touch before update on public.x_connections
  for each row execute function app.touch_updated_at();

-- -----------------------------------------------------------------------------
-- RLS: a user can see that they are connected, never the tokens.
-- -----------------------------------------------------------------------------
revoke all on public.x_connections, public.x_oauth_states from anon, authenticated;
grant select (user_id, x_user_id, scope, connected_at, updated_at) on public.x_connections to authenticated;
grant all on public.x_connections, public.x_oauth_states to service_role;

alter table public.x_connections enable row level security;
alter table public.x_connections force row level security;
alter table public.x_oauth_states enable row level security;
alter table public.x_oauth_states force row level security;

create policy "Users can see their own X connection."
  on public.x_connections for select to authenticated
  using (user_id = (select auth.uid()));
