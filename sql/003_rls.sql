-- =============================================================================
-- Row level security: every table in public has RLS enabled and forced.
-- anon gets nothing. authenticated gets its own rows, through the grants below
-- and the policies after them; the guard triggers limit what it may change.
-- =============================================================================

-- -----------------------------------------------------------------------------
-- Grants. Supabase grants all on public to the API roles by default; take that
-- back, then grant each role exactly what its policies need.
-- -----------------------------------------------------------------------------
revoke all on all tables in schema public from anon, authenticated;
revoke all on all sequences in schema public from anon, authenticated;
revoke all on all functions in schema public from anon, authenticated, public;
alter default privileges in schema public revoke all on tables from anon, authenticated;
alter default privileges in schema public revoke all on sequences from anon, authenticated;
alter default privileges in schema public revoke all on functions from anon, authenticated, public;
alter default privileges in schema app revoke all on functions from public;
alter default privileges in schema private revoke all on functions from public;
revoke all on all functions in schema app from public;

grant select, update on public.users to authenticated;
grant select, insert, update, delete on public.goals to authenticated;
grant select, insert, update, delete on public.checkpoints to authenticated;
grant select, insert, update on public.submissions to authenticated;
grant select, update, delete on public.kompromat to authenticated;
-- Ciphertext and key ids are the vault's; the owner reads metadata only.
revoke select on public.kompromat from authenticated;
grant select (id, user_id, file_path, original_filename, file_type, severity, description,
              size_bytes, created_at, updated_at)
  on public.kompromat to authenticated;
grant select, insert, update, delete on public.contacts to authenticated;
grant select on public.consequences to authenticated;
grant select, insert, delete on public.team_members to authenticated;
-- audit_log: no grant to any API role but the service.

grant all on all tables in schema public to service_role;
grant all on all sequences in schema public to service_role;

-- -----------------------------------------------------------------------------
-- Enable and force RLS
-- -----------------------------------------------------------------------------
alter table public.users enable row level security;
alter table public.users force row level security;
alter table public.goals enable row level security;
alter table public.goals force row level security;
alter table public.checkpoints enable row level security;
alter table public.checkpoints force row level security;
alter table public.submissions enable row level security;
alter table public.submissions force row level security;
alter table public.kompromat enable row level security;
alter table public.kompromat force row level security;
alter table public.contacts enable row level security;
alter table public.contacts force row level security;
alter table public.consequences enable row level security;
alter table public.consequences force row level security;
alter table public.team_members enable row level security;
alter table public.team_members force row level security;
alter table public.audit_log enable row level security;
alter table public.audit_log force row level security;

-- -----------------------------------------------------------------------------
-- Helpers for policies. Security definer so policies on goals and
-- team_members can look at each other without recursing through RLS.
-- -----------------------------------------------------------------------------

-- True when the calling user owns the goal.
create function private.owns_goal(p_goal_id uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.goals g
    where g.id = p_goal_id and g.user_id = (select auth.uid())
  )
$$;

-- True when the calling user owns the goal or is a team member on it.
create function private.can_read_goal(p_goal_id uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.goals g
    where g.id = p_goal_id and g.user_id = (select auth.uid())
  ) or exists (
    select 1 from public.team_members tm
    where tm.goal_id = p_goal_id and tm.user_id = (select auth.uid())
  )
$$;

revoke all on function private.owns_goal(uuid), private.can_read_goal(uuid) from public;
grant execute on function private.owns_goal(uuid), private.can_read_goal(uuid)
  to authenticated, service_role;

-- -----------------------------------------------------------------------------
-- Policies
-- -----------------------------------------------------------------------------

-- users
create policy "Users can read their own profile."
  on public.users for select to authenticated
  using (id = (select auth.uid()));
create policy "Users can update their own profile."
  on public.users for update to authenticated
  using (id = (select auth.uid()))
  with check (id = (select auth.uid()));

-- goals
create policy "Users can read their own goals and goals shared with them."
  on public.goals for select to authenticated
  using (user_id = (select auth.uid()) or private.can_read_goal(id));
create policy "Users can create goals for themselves."
  on public.goals for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy "Users can update their own goals."
  on public.goals for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "Users can delete their own goals."
  on public.goals for delete to authenticated
  using (user_id = (select auth.uid()));

-- checkpoints
create policy "Users can read checkpoints of goals they can read."
  on public.checkpoints for select to authenticated
  using (private.can_read_goal(goal_id));
create policy "Users can add checkpoints to their own goals."
  on public.checkpoints for insert to authenticated
  with check (private.owns_goal(goal_id));
create policy "Users can update checkpoints of their own goals."
  on public.checkpoints for update to authenticated
  using (private.owns_goal(goal_id))
  with check (private.owns_goal(goal_id));
create policy "Users can delete checkpoints of their own goals."
  on public.checkpoints for delete to authenticated
  using (private.owns_goal(goal_id));

-- submissions
create policy "Users can read their own submissions."
  on public.submissions for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can submit proof for their own checkpoints."
  on public.submissions for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy "Users can update their own submissions."
  on public.submissions for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));

-- kompromat
create policy "Users can read their own kompromat's metadata."
  on public.kompromat for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can describe their own kompromat."
  on public.kompromat for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "Users can delete their own kompromat."
  on public.kompromat for delete to authenticated
  using (user_id = (select auth.uid()));

-- contacts
create policy "Users can read their own contacts."
  on public.contacts for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Users can add their own contacts."
  on public.contacts for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy "Users can update their own contacts."
  on public.contacts for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "Users can delete their own contacts."
  on public.contacts for delete to authenticated
  using (user_id = (select auth.uid()));

-- consequences
create policy "Users can read the consequences of their own goals."
  on public.consequences for select to authenticated
  using (user_id = (select auth.uid()));

-- team_members
create policy "Users can see the teams of their goals and their own memberships."
  on public.team_members for select to authenticated
  using (user_id = (select auth.uid()) or private.owns_goal(goal_id));
create policy "Goal owners can add team members."
  on public.team_members for insert to authenticated
  with check (private.owns_goal(goal_id) and user_id <> (select auth.uid()));
create policy "Goal owners can remove team members, and members can leave."
  on public.team_members for delete to authenticated
  using (user_id = (select auth.uid()) or private.owns_goal(goal_id));
