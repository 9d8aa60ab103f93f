-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- The master keys' lifecycle, so an erasure reaches backups: every per-user data key is re-wrapped
-- under the active master key (shared/account/keys.py), the key it replaced is retired, and a retired key
-- may be destroyed once BACKUP_RETENTION_DAYS have passed since, when no backup it could open
-- remains. Key material never comes here: only the ids KOMPROMAT_KEYS names.

-- Records what the scheduler sees in KOMPROMAT_KEYS (p_configured, p_active) and answers the
-- lifecycle: when the active key took over, which retired keys may now be destroyed, which are gone.
create or replace function app.sync_master_keys(p_active text, p_configured text[], p_retention interval)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_active public.master_keys;
begin
  if not p_active = any (p_configured) then
    raise exception using errcode = '22023', message = 'the active key is not among the configured keys';
  end if;
  insert into public.master_keys (key_id) select unnest(p_configured) on conflict (key_id) do nothing;
  update public.master_keys set active_since = now() where key_id = p_active and active_since is null;
  -- A key that was active and no longer is was retired now; its backups expire after the retention.
  update public.master_keys set retired_at = now(), destroy_after = now() + p_retention
  where key_id <> p_active and active_since is not null and retired_at is null;
  -- A key never active, set aside for a newer one: retired as well (nothing was wrapped under it
  -- after it was superseded; what was, the scheduler re-wraps).
  update public.master_keys set retired_at = now(), destroy_after = now() + p_retention
  where key_id <> p_active and active_since is null and retired_at is null
    and first_seen_at < (select m.first_seen_at from public.master_keys m where m.key_id = p_active);
  update public.master_keys set removed_at = now()
  where not key_id = any (p_configured) and removed_at is null;
  update public.master_keys set removed_at = null where key_id = any (p_configured);
  select * into v_active from public.master_keys where key_id = p_active;
  return jsonb_build_object(
    'active', p_active,
    'active_since', v_active.active_since,
    'destroy_now', coalesce((select jsonb_agg(m.key_id order by m.key_id) from public.master_keys m
                             where m.key_id = any (p_configured) and m.destroy_after <= now()), '[]'::jsonb),
    'retired', coalesce((select jsonb_agg(jsonb_build_object('key_id', m.key_id, 'destroy_after', m.destroy_after)
                                          order by m.key_id)
                         from public.master_keys m
                         where m.key_id = any (p_configured) and m.retired_at is not null), '[]'::jsonb));
end
$$;

revoke all on function app.sync_master_keys(text, text[], interval) from public;
grant execute on function app.sync_master_keys(text, text[], interval) to service_role;
