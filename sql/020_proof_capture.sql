-- =============================================================================
-- Proof is captured when it is submitted: a URL's page is stored with its
-- SHA-256, a Storage file's SHA-256 is recorded. Grading reads only the capture.
-- A submission protects its checkpoint only if it was captured before the
-- deadline, or if capturing it before the deadline failed because a provider
-- was unavailable (our outage is never the user's loss; such proof is reviewed
-- by a person when it is finally captured).
-- =============================================================================
alter table public.submissions
  add column captured_at timestamptz,
  add column proof_sha256 text check (proof_sha256 ~ '^[0-9a-f]{64}$'),
  add column capture_blocked_at timestamptz;

-- Proof made before captures existed is taken as captured when it was submitted.
update public.submissions set captured_at = submitted_at where captured_at is null;

create table public.proof_captures (
  submission_id uuid primary key references public.submissions (id) on delete cascade,
  content bytea not null,
  content_type text not null check (char_length(content_type) <= 255),
  sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  captured_at timestamptz not null default now()
);
comment on table public.proof_captures is 'The page a URL proof showed when it was submitted; grading reads this, never the live page.';
alter table public.proof_captures enable row level security;
alter table public.proof_captures force row level security;
grant all on public.proof_captures to service_role;
