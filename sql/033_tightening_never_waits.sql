-- =============================================================================
-- Tightening is never blocked by easing. A tightening request (raise_stake,
-- add_checkpoint, earlier_deadline) is inserted as pending and applied in the same
-- transaction; the one-pending rule caught it too, so while a pause or any other
-- easing request waited out its notice, tightening answered 409. The rule now
-- covers easing requests only: at most one waits per goal.
-- =============================================================================
create unique index if not exists goal_change_requests_one_pending_easing on public.goal_change_requests (goal_id)
  where status = 'pending'
    and change_type in ('pause', 'extend_deadline', 'lower_stake', 'remove_checkpoint', 'cancel_goal');

drop index if exists public.goal_change_requests_one_pending;
