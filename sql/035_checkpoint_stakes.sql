-- =============================================================================
-- What a deadline costs is fixed before it can be gamed. Each checkpoint records
-- the part of the stake it puts at risk (stake_cents) when the goal activates or
-- the checkpoint is added; detection charges that amount, never a share counted
-- at detection (adding checkpoints no longer dilutes the ones already due). The
-- final deadline's part is what the others leave: the parts sum to the stake.
-- A draft's checkpoints have none yet. sql/functions/goals.sql and
-- goal_changes.sql keep it; only an easing change, after its notice, lowers it.
-- =============================================================================
alter table public.checkpoints
  add column stake_cents bigint constraint checkpoints_stake_cents_not_negative check (stake_cents >= 0);

comment on column public.checkpoints.stake_cents is
  'The cents this deadline puts at stake, fixed at activation or when added; null while the goal is a draft';

-- Goals already past their draft keep the split detection used until now: each checkpoint
-- floor(stake / (checkpoints + 1)), the final deadline the rest.
with split as (
  select g.id as goal_id, round(g.monetary_stake * 100)::bigint as stake,
         (select count(*) from public.checkpoints x where x.goal_id = g.id and not x.is_final) as n
  from public.goals g
  where g.status <> 'draft'
)
update public.checkpoints cp
set stake_cents = case when cp.is_final then s.stake - s.n * (s.stake / (s.n + 1))
                       else s.stake / (s.n + 1) end
from split s
where cp.goal_id = s.goal_id;
