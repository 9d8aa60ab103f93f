-- =============================================================================
-- A reuse match tells the owner only that the proof was seen before and went to a
-- person, never whose. The earlier submission a check matched lives here, read by
-- the service (operator_review) alone; ai_analysis_result, which its owner reads
-- through PostgREST and grade answers, says "reused": true and nothing more.
-- =============================================================================
create table public.proof_matches (
  submission_id uuid primary key references public.submissions (id) on delete cascade,
  earlier_submission_id uuid references public.submissions (id) on delete set null,
  check_name text not null check (check_name in ('exact_reuse', 'near_reuse', 'page_content')),
  found_at timestamptz not null default now()
);

create index proof_matches_earlier_idx on public.proof_matches (earlier_submission_id)
  where earlier_submission_id is not null;

-- Matches recorded before this migration move here, and leave what the owner can read.
insert into public.proof_matches (submission_id, earlier_submission_id, check_name, found_at)
select s.id, e.id,
       case when s.ai_analysis_result -> 'checks' ->> 'near_reuse' like 'matched%' then 'near_reuse'
            when s.ai_analysis_result -> 'checks' ->> 'page_content' = 'matched' then 'page_content'
            else 'exact_reuse' end,
       coalesce(s.graded_at, s.updated_at)
from public.submissions s
left join public.submissions e on e.id::text = s.ai_analysis_result ->> 'reused_submission_id'
where s.ai_analysis_result ? 'reused_submission_id';

update public.submissions
set ai_analysis_result = (ai_analysis_result - 'reused_submission_id') || '{"reused": true}'::jsonb
where ai_analysis_result ? 'reused_submission_id';

revoke all on public.proof_matches from anon, authenticated;
grant all on public.proof_matches to service_role;
alter table public.proof_matches enable row level security;
alter table public.proof_matches force row level security;
