-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- pg_cron's entry point: calls check_deadlines through pg_net with the Vault-held URL and key.
-- Every function, trigger and grant here is this file's alone; numbered migrations hold tables,
-- types, indexes, RLS and policies.

-- =============================================================================
-- Scheduler: pg_cron calls the check_deadlines function every five minutes
-- through pg_net. The function's URL and the service credential come from
-- Supabase Vault; nothing secret is written here.
--
-- The schedule is created only where pg_cron and pg_net exist (Supabase), so
-- a local database still migrates.
-- =============================================================================
-- Posts to check_deadlines with the service credential from Vault. Returns the
-- pg_net request id, or null (with a warning) when Vault is not set up yet.
create or replace function app.check_missed_deadlines() returns bigint
language plpgsql security definer
set search_path = ''
as $$
declare
  v_url text;
  v_key text;
  v_request_id bigint;
begin
  select ds.decrypted_secret into v_url
  from vault.decrypted_secrets ds where ds.name = 'check_deadlines_url';
  select ds.decrypted_secret into v_key
  from vault.decrypted_secrets ds where ds.name = 'check_deadlines_service_key';
  if v_url is null or v_key is null then
    raise warning 'check_missed_deadlines: Vault secrets check_deadlines_url and check_deadlines_service_key are not both set';
    return null;
  end if;
  select net.http_post(
    url := v_url,
    body := jsonb_build_object('source', 'pg_cron'),
    -- A secret key (sb_secret_...) goes in apikey, as Supabase's gateway expects, and as the bearer
    -- token; a legacy service_role JWT works the same way while a project still has one.
    headers := jsonb_build_object(
      'Content-Type', 'application/json',
      'apikey', v_key,
      'Authorization', 'Bearer ' || v_key
    ),
    timeout_milliseconds := 55000
  ) into v_request_id;
  return v_request_id;
end
$$;

revoke all on function app.check_missed_deadlines() from public;

grant execute on function app.check_missed_deadlines() to service_role;
