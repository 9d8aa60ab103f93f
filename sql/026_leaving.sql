-- =============================================================================
-- Leaving (issue 19): an account can be erased, and its money records survive it.
--
-- Every reference to a user is re-made: rows that are money or commitment facts
-- (the holding cell, ledger, withdrawals, refunds, goals, consequences, the books)
-- now refuse to be deleted with the user (restrict), and every reference follows
-- the user's id when erasure replaces it with a random tombstone id (on update
-- cascade). Rows that are only personal data still go with the user (cascade).
-- public.users no longer cascades from auth.users: a trigger on auth.users decides
-- (sql/functions/erasure.sql), so a deletion from the dashboard is safe too.
-- =============================================================================

do $$
declare
  c record;
  v_action text;
begin
  for c in
    select con.conname, con.conrelid::regclass::text as tbl, a.attname as col
    from pg_constraint con
    join pg_attribute a on a.attrelid = con.conrelid and a.attnum = con.conkey[1]
    where con.contype = 'f' and con.confrelid = 'public.users'::regclass
  loop
    v_action := case
      when c.col in ('vouched_by', 'decided_by', 'resolved_by') then 'set null'
      when c.tbl in ('public.kompromat', 'public.contacts', 'public.x_connections', 'public.x_oauth_states',
                     'public.notifications', 'public.contact_suppressions', 'public.grading_requests',
                     'public.team_members') then 'cascade'
      else 'restrict'
    end;
    execute format('alter table %s drop constraint %I', c.tbl, c.conname);
    execute format('alter table %s add constraint %I foreign key (%I) references public.users (id)'
                   ' on update cascade on delete %s', c.tbl, c.conname, c.col, v_action);
  end loop;
end
$$;

alter type public.notification_type add value if not exists 'kompromat_expired' after 'goal_changed';

-- Deliberate: the trigger on auth.users takes this foreign key's place (an erased account's row
-- outlives its Auth user, as the tombstone), and only an erased account has no email.
-- squawk-ignore ban-drop-constraint
alter table public.users drop constraint users_id_fkey;
-- squawk-ignore ban-drop-not-null
alter table public.users alter column email drop not null;
alter table public.users add column leaving_requested_at timestamptz;
alter table public.users add column erased_at timestamptz;
-- Every existing row has an email, so the scan finds nothing; users is small and rarely written.
-- squawk-ignore constraint-missing-not-valid
alter table public.users add constraint users_email_unless_erased check (email is not null or erased_at is not null);
