-- =============================================================================
-- Grading recovers by itself: a submission left pending (or stuck in grading) by
-- an outage is re-graded by check_deadlines, with backoff, oldest first.
-- =============================================================================
alter table public.submissions
  add column grading_attempts integer not null default 0 check (grading_attempts >= 0),
  add column next_grading_at timestamptz;

create index submissions_to_regrade on public.submissions (submitted_at)
  where status in ('pending', 'grading');
