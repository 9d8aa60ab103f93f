-- =============================================================================
-- Proof made for this checkpoint (issue 20), the rest: near reuse, stale proof
-- and the challenge phrase.
--   proof_phash        64-bit perceptual hash (imagehash's pHash) of an image capture
--   proof_taken_at     the capture time an image's EXIF states, when it states one
--   proof_taken_zoned  whether the EXIF named its time zone (else UTC was assumed)
--   proof_text_sha256  SHA-256 of a captured page's main text, whitespace folded
--   goals.proof_challenge     each checkpoint gets a phrase the proof must show
--   checkpoints.proof_phrase  that phrase, issued when the checkpoint opens
-- The near-reuse lookup is multi-index hashing: the 64 bits are four 16-bit
-- segments, each with its own index. Two hashes within r bits agree to within
-- floor(r/4) bits on at least one segment, so a lookup probes each segment's
-- index with the few values that close, then compares the whole hash.
-- =============================================================================
alter table public.submissions
  add column proof_phash bigint,
  add column proof_taken_at timestamptz,
  add column proof_taken_zoned boolean,
  add column proof_text_sha256 text check (proof_text_sha256 ~ '^[0-9a-f]{64}$');

create index submissions_phash_0_idx on public.submissions (((proof_phash >> 48) & 65535)) where proof_phash is not null;
create index submissions_phash_1_idx on public.submissions (((proof_phash >> 32) & 65535)) where proof_phash is not null;
create index submissions_phash_2_idx on public.submissions (((proof_phash >> 16) & 65535)) where proof_phash is not null;
create index submissions_phash_3_idx on public.submissions ((proof_phash & 65535)) where proof_phash is not null;
create index submissions_proof_text_sha256_idx on public.submissions (proof_text_sha256)
  where proof_text_sha256 is not null;

alter table public.goals add column proof_challenge boolean not null default false;

alter table public.checkpoints
  add column proof_phrase text check (char_length(proof_phrase) between 6 and 60);
