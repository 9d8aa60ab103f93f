-- =============================================================================
-- Proof made for this checkpoint (issue 20): a capture's SHA-256 is looked up
-- among every earlier submission, so reused proof goes to a person.
-- =============================================================================
create index submissions_proof_sha256_idx on public.submissions (proof_sha256) where proof_sha256 is not null;
