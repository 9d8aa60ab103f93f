-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- Leaving (issue 19): what keeps an account from being erased, the erasure itself (personal data
-- removed or redacted, money facts kept under a random tombstone id), and the trigger that makes
-- a deletion of the Auth user (the dashboard, auth.admin.deleteUser) take the same path.
-- shared/account/erasure.py holds the data map: what erasure does to each table and column, and why.

-- Why an account cannot be erased yet, or null when it can.
create or replace function private.erasure_blocker(p_user_id uuid) returns text
language sql stable security definer
set search_path = ''
as $$
  select case
    when exists (select 1 from public.goals g where g.user_id = p_user_id and g.status = 'active')
      then 'it has an active goal'
    when exists (select 1 from public.consequences c where c.user_id = p_user_id
                 and c.execution_status in ('held', 'pending', 'executing'))
      then 'it has a consequence that is not finished'
    when exists (select 1 from public.holding_cells hc where hc.user_id = p_user_id
                 and hc.available_cents + hc.reserved_cents + hc.disputed_cents > 0)
      then 'it has money in the holding cell'
    when exists (select 1 from public.withdrawal_refunds wr where wr.user_id = p_user_id
                 and wr.status in ('planned', 'pending'))
      then 'a refund to its card is not finished'
  end
$$;

-- Erases an account: what identifies the person goes, the money facts stay under a random
-- tombstone id (every reference follows it, on update cascade). Returns the tombstone id.
-- An account's tombstone id: derived from its id and the database's erasure salt, so a restore from
-- a backup finds the account an erasure log entry names without the log naming anyone.
create or replace function private.tombstone_of(p_user_id uuid) returns uuid
language sql stable
set search_path = ''
as $$
  select pg_catalog.encode(pg_catalog.substr(
           pg_catalog.sha256(s.salt || pg_catalog.convert_to(p_user_id::text, 'UTF8')), 1, 16), 'hex')::uuid
  from app.erasure_salt s
$$;

drop function if exists app.erase_user(uuid);
-- p_force: a re-applied erasure after a restore (the backup predates the settlement that allowed it).
create or replace function app.erase_user(p_user_id uuid, p_force boolean default false) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_blocker text;
  v_tombstone uuid := private.tombstone_of(p_user_id);
begin
  perform 1 from public.users where id = p_user_id and erased_at is null for update;
  if not found then
    raise exception using errcode = 'P0002', message = 'no such account';
  end if;
  v_blocker := case when p_force then null else private.erasure_blocker(p_user_id) end;
  if v_blocker is not null then
    raise exception using errcode = '55000', message = 'this account cannot be erased yet: ' || v_blocker,
      hint = 'Leave through delete_account: the goals are cancelled under the notice period and the money refunded.';
  end if;
  -- References kept on money records lose what they pointed at.
  update public.consequences
  set kompromat_id = null, target_contact_id = null, contest_reason = null, decision_reason = null, last_error = null
  where user_id = p_user_id;
  update public.consequence_deliveries d set recipient = 'erased:' || d.id, contact_id = null, last_error = null
  from public.consequences c where c.id = d.consequence_id and c.user_id = p_user_id;
  -- Drafts were never a commitment: they go.
  delete from public.goals where user_id = p_user_id and status = 'draft';
  update public.goals set minor_kompromat_id = null, major_kompromat_id = null, witness_contact_id = null,
    title = 'erased', description = null, grading_rubric = 'erased'
  where user_id = p_user_id;
  update public.checkpoints cp set title = 'erased', description = null, requirements = null
  from public.goals g where g.id = cp.goal_id and g.user_id = p_user_id;
  -- Proof, its captures, witness requests and comments, grading history: gone with the submissions.
  delete from public.grading_requests where user_id = p_user_id;
  delete from public.submissions where user_id = p_user_id;
  -- Personal rows.
  delete from public.kompromat where user_id = p_user_id;
  delete from public.notifications where user_id = p_user_id;
  delete from public.contacts where user_id = p_user_id;
  delete from public.contact_suppressions where user_id = p_user_id;
  delete from public.x_connections where user_id = p_user_id;
  delete from public.x_oauth_states where user_id = p_user_id;
  delete from public.team_members where user_id = p_user_id;
  -- The data key goes: every copy of the user's sealed kompromat, in backups too, stops opening.
  delete from public.user_data_keys where user_id = p_user_id;
  delete from public.goal_change_requests where user_id = p_user_id and status = 'pending';
  update public.goal_change_requests set change = '{}'::jsonb where user_id = p_user_id;
  -- The audit trail keeps its facts under the tombstone, without the words it carried.
  update public.audit_log set user_id = v_tombstone, details = details - 'reason' - 'source_id'
  where user_id = p_user_id;
  update public.users
  set id = v_tombstone, email = null, display_name = null, time_zone = 'UTC', onboarding_completed = false,
      mute_reminders = true, unsubscribe_token_hash = null, leaving_requested_at = null, erased_at = now()
  where id = p_user_id;
  perform app.audit('user', v_tombstone, 'erased', v_tombstone, '{}'::jsonb);
  -- The erasure log: the tombstone id alone, exported outside the database by the scheduler.
  insert into public.erasure_log (tombstone_id) values (v_tombstone) on conflict (tombstone_id) do nothing;
  return v_tombstone;
end
$$;

-- After a restore from a backup: the account an erasure log entry names is erased again, under the
-- same tombstone id, whatever the backup says it still owed (the money is reconciled with Stripe),
-- and its Auth user with it. Returns whether an account was found to erase.
create or replace function app.reapply_erasure(p_tombstone uuid) returns boolean
language plpgsql security definer
set search_path = ''
as $$
declare
  v_user uuid;
begin
  select u.id into v_user from public.users u
  where u.erased_at is null and private.tombstone_of(u.id) = p_tombstone
  for update;
  if v_user is null then
    insert into public.erasure_log (tombstone_id) values (p_tombstone) on conflict (tombstone_id) do nothing;
    return false;
  end if;
  perform app.erase_user(v_user, true);
  delete from auth.users where id = v_user;
  return true;
end
$$;

-- Supabase deletes an Auth user with `delete from auth.users` (the dashboard, auth.admin.deleteUser).
-- Refused, with the reason, while the account has a commitment or money; otherwise it is erased
-- exactly as delete_account erases it (an account delete_account already erased has no row here).
create or replace function app.on_auth_user_delete() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_blocker text;
begin
  if exists (select 1 from public.users u where u.id = old.id and u.erased_at is null) then
    v_blocker := private.erasure_blocker(old.id);
    if v_blocker is not null then
      raise exception using errcode = '55000', message = 'this account cannot be deleted yet: ' || v_blocker,
        hint = 'Leave through delete_account: the goals are cancelled under the notice period and the money refunded.';
    end if;
    perform app.erase_user(old.id);
  end if;
  return old;
end
$$;

-- Supabase's postgres role does not own auth.users (supabase_auth_admin does): `create or replace
-- trigger` needs only the TRIGGER privilege it has, where dropping a trigger needs ownership.
create or replace trigger auth_users_erase before delete on auth.users
  for each row execute function app.on_auth_user_delete();

-- A leaving account starts nothing new.
create or replace function app.guard_leaving_goals() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if exists (select 1 from public.users u where u.id = new.user_id and u.leaving_requested_at is not null) then
    raise exception using errcode = '42501', message = 'this account is leaving: it can create no goal';
  end if;
  return new;
end
$$;

drop trigger if exists goals_guard_leaving on public.goals;
create trigger goals_guard_leaving before insert on public.goals
  for each row execute function app.guard_leaving_goals();

-- Kompromat nothing needs any more (no draft or active goal names it, no unfinished consequence
-- will show it) is destroyed p_days after it was last needed, and its owner is told. A consequence
-- that needs it always finds it: those rows are never candidates.
create or replace function app.expire_kompromat(p_days integer, p_limit integer default 200) returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  v_count integer;
begin
  with unneeded as (
    select k.id, k.user_id, k.original_filename,
           greatest(k.created_at,
                    (select max(g.closed_at) from public.goals g
                     where k.id in (g.minor_kompromat_id, g.major_kompromat_id)),
                    (select max(coalesce(c.executed_at, c.updated_at)) from public.consequences c
                     where c.kompromat_id = k.id)) as last_needed
    from public.kompromat k
    where not exists (select 1 from public.goals g where k.id in (g.minor_kompromat_id, g.major_kompromat_id)
                      and g.status in ('draft', 'active'))
      and not exists (select 1 from public.consequences c where c.kompromat_id = k.id
                      and c.execution_status in ('held', 'pending', 'executing'))
    order by k.created_at
    limit p_limit
    for update of k skip locked
  ), due as (
    select * from unneeded where last_needed < now() - make_interval(days => p_days)
  ), unlinked as (
    update public.consequences c set kompromat_id = null from due where c.kompromat_id = due.id returning c.id
  ), gone as (
    delete from public.kompromat k using due where k.id = due.id returning k.id, k.user_id
  ), told as (
    insert into public.notifications (type, user_id, subject_id, dedupe_key, template_data)
    select 'kompromat_expired', g.user_id, g.id, 'kompromat_expired:' || g.id,
           jsonb_build_object('kompromat_id', g.id, 'retention_days', p_days)
    from gone g
    on conflict (dedupe_key) do nothing
    returning id
  )
  select count(*) into v_count from gone;
  if v_count > 0 then
    perform app.audit('kompromat', null, 'expired', null, jsonb_build_object('count', v_count, 'days', p_days));
  end if;
  return v_count;
end
$$;

-- An erased account's money facts are kept FINANCIAL_RECORD_RETENTION_YEARS, then purged. Every
-- posting balances per account (its movements, its cell, its platform entries), so removing all of
-- a settled account's rows keeps the books balanced. An account with an open money item waits.
create or replace function app.purge_tombstones(p_years integer, p_limit integer default 100) returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  v_user uuid;
  v_count integer := 0;
begin
  for v_user in
    select u.id from public.users u
    where u.erased_at < now() - make_interval(years => p_years)
      and not exists (select 1 from public.money_items m where m.user_id = u.id and m.resolved_at is null)
    order by u.erased_at limit p_limit
    for update skip locked
  loop
    delete from public.stripe_movements where user_id = v_user;
    delete from public.platform_entries where user_id = v_user;
    delete from public.money_items where user_id = v_user;
    delete from public.ledger_entries where user_id = v_user;
    delete from public.holding_cells where user_id = v_user;
    delete from public.withdrawal_refunds where user_id = v_user;
    delete from public.withdrawals where user_id = v_user;
    delete from public.roulette_rolls where user_id = v_user;
    delete from public.goal_change_requests where user_id = v_user;
    delete from public.consequences where user_id = v_user;
    delete from public.goals where user_id = v_user;
    delete from public.audit_log where user_id = v_user;
    delete from public.users where id = v_user;
    v_count := v_count + 1;
  end loop;
  if v_count > 0 then
    perform app.audit('user', null, 'tombstones_purged', null, jsonb_build_object('count', v_count, 'years', p_years));
  end if;
  return v_count;
end
$$;

revoke all on function app.purge_tombstones(integer, integer) from public;
grant execute on function app.purge_tombstones(integer, integer) to service_role;

revoke all on function private.tombstone_of(uuid), app.reapply_erasure(uuid) from public;
grant execute on function app.reapply_erasure(uuid) to service_role;

revoke all on function private.erasure_blocker(uuid), app.erase_user(uuid, boolean), app.on_auth_user_delete(),
  app.guard_leaving_goals(), app.expire_kompromat(integer, integer) from public;
grant execute on function private.erasure_blocker(uuid), app.erase_user(uuid, boolean), app.expire_kompromat(integer, integer)
  to service_role;
