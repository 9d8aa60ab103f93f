-- =============================================================================
-- Grading requests are counted, so that one user or one submission cannot call
-- the model without limit (GRADING_REQUESTS_PER_HOUR, app.note_grading_request).
-- =============================================================================
create table public.grading_requests (
  id bigint generated always as identity primary key,
  user_id uuid not null references public.users (id) on delete cascade,
  submission_id uuid not null references public.submissions (id) on delete cascade,
  requested_at timestamptz not null default now()
);
create index grading_requests_by_user on public.grading_requests (user_id, requested_at);
create index grading_requests_by_submission on public.grading_requests (submission_id, requested_at);
alter table public.grading_requests enable row level security;
alter table public.grading_requests force row level security;
grant all on public.grading_requests to service_role;

-- Vouches are counted per voucher per day.
create index submissions_vouched_by on public.submissions (vouched_by, vouched_at) where vouched_by is not null;
