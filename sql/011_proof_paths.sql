-- =============================================================================
-- Proof files live in their owner's folder of the proofs bucket
-- (<user id>/...): a submission cannot point the grader at someone else's file.
-- =============================================================================

alter table public.submissions add constraint submissions_file_in_owners_folder
  check (file_path is null or (file_path like user_id::text || '/%' and file_path not like '%..%')) not valid;
alter table public.submissions validate constraint submissions_file_in_owners_folder;
