-- Repeatable: re-applied whenever this file changes (see shared/dev/migrate.py).
-- Helpers that RLS policies call.
-- Every function, trigger and grant here is this file's alone; numbered migrations hold tables,
-- types, indexes, RLS and policies.

-- -----------------------------------------------------------------------------
-- Helpers for policies. Security definer so policies on goals and
-- team_members can look at each other without recursing through RLS.
-- -----------------------------------------------------------------------------
-- True when the calling user owns the goal.
create or replace function private.owns_goal(p_goal_id uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.goals g
    where g.id = p_goal_id and g.user_id = (select auth.uid())
  )
$$;

-- True when the calling user owns the goal or is a team member on it.
create or replace function private.can_read_goal(p_goal_id uuid) returns boolean
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
