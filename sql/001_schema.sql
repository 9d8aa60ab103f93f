-- =============================================================================
-- Threativator schema: types, tables, constraints and indexes.
--
-- Data model from the original design, plus what the product needs to be
-- trustworthy: a final checkpoint per goal, updated_at columns, an audit log,
-- team members, and the fields that make consequence execution exactly-once.
-- =============================================================================

-- Schemas that PostgREST does not expose:
--   app      state-transition functions and trigger functions; service_role only
--   private  helpers that RLS policies call; execute granted to authenticated
create schema if not exists app;
create schema if not exists private;
revoke all on schema app from public;
revoke all on schema private from public;
grant usage on schema app to service_role;
grant usage on schema private to authenticated, service_role;

-- -----------------------------------------------------------------------------
-- Types
-- -----------------------------------------------------------------------------
create type public.grading_type as enum ('ai', 'human_witness');

create type public.charity_enum as enum (
  'givedirectly',
  'against_malaria_foundation',
  'doctors_without_borders',
  'red_cross',
  'unicef',
  'wikimedia'
);

-- A goal is a draft until the service activates it (stake reserved, final
-- checkpoint created). After that only the service moves it.
create type public.goal_status as enum ('draft', 'active', 'completed', 'failed');

create type public.checkpoint_status as enum ('pending', 'completed', 'missed');

create type public.submission_type_enum as enum ('file', 'url');

create type public.verdict_enum as enum ('pass', 'fail');

create type public.submission_status as enum (
  'pending', 'grading', 'awaiting_witness', 'needs_review', 'passed', 'failed'
);

create type public.kompromat_severity as enum ('minor', 'major');

create type public.contact_role as enum ('witness', 'consequence_target');

-- The design's 'humiliation' is split by channel, so a final deadline can carry
-- one email consequence and one X consequence, each exactly once.
create type public.consequence_type_enum as enum ('monetary', 'humiliation_email', 'humiliation_x');

create type public.execution_status_enum as enum ('pending', 'executing', 'completed', 'failed');

-- -----------------------------------------------------------------------------
-- Tables
-- -----------------------------------------------------------------------------

-- One row per Supabase Auth user; created by a trigger on auth.users.
create table public.users (
  id uuid primary key references auth.users (id) on delete cascade,
  email text not null unique,
  display_name text check (char_length(display_name) <= 100),
  time_zone text not null default 'UTC' check (char_length(time_zone) between 1 and 64),
  stripe_customer_id text unique,
  holding_cell_balance numeric(10, 2) not null default 0.00 check (holding_cell_balance >= 0),
  onboarding_completed boolean not null default false,
  mute_reminders boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Private material, encrypted by the application before it reaches the database.
create table public.kompromat (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  file_path text,
  original_filename text not null check (char_length(original_filename) between 1 and 255),
  file_type text not null,
  severity public.kompromat_severity not null,
  description text check (char_length(description) <= 500),
  encrypted_content bytea,
  key_id text,
  size_bytes integer check (size_bytes >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint kompromat_has_content check (file_path is not null or encrypted_content is not null),
  constraint kompromat_ciphertext_names_its_key check (encrypted_content is null or key_id is not null)
);

-- People a user names: witnesses who referee, targets who receive consequences.
create table public.contacts (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  name text not null check (char_length(name) between 1 and 100),
  email text not null check (email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  role public.contact_role[] not null check (cardinality(role) between 1 and 2),
  verified boolean not null default false,
  verified_at timestamptz,
  declined_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint contacts_email_unique_per_user unique (user_id, email)
);

create table public.goals (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.users (id) on delete cascade,
  title text not null check (char_length(title) between 1 and 200),
  description text check (char_length(description) <= 5000),
  final_deadline timestamptz not null,
  grading_rubric text not null check (char_length(grading_rubric) between 1 and 10000),
  referee_type public.grading_type not null,
  witness_contact_id uuid references public.contacts (id) on delete set null,
  monetary_stake numeric(10, 2) not null
    constraint goals_stake_is_bounded check (monetary_stake >= 0 and monetary_stake <= 10000),
  charity_destination public.charity_enum not null,
  minor_kompromat_id uuid references public.kompromat (id) on delete set null,
  major_kompromat_id uuid references public.kompromat (id) on delete set null,
  status public.goal_status not null default 'draft',
  activated_at timestamptz,
  closed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint goals_witness_goal_names_a_witness
    check (referee_type <> 'human_witness' or status = 'draft' or witness_contact_id is not null)
);

create table public.checkpoints (
  id uuid primary key default gen_random_uuid(),
  goal_id uuid not null references public.goals (id) on delete cascade,
  title text not null check (char_length(title) between 1 and 200),
  description text check (char_length(description) <= 5000),
  deadline timestamptz not null,
  order_position integer not null check (order_position > 0),
  requirements text check (char_length(requirements) <= 5000),
  status public.checkpoint_status not null default 'pending',
  -- The checkpoint at the goal's final deadline, created when the goal is activated.
  is_final boolean not null default false,
  completed_at timestamptz,
  missed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint checkpoints_order_position_unique_per_goal unique (goal_id, order_position)
);

create table public.submissions (
  id uuid primary key default gen_random_uuid(),
  checkpoint_id uuid not null references public.checkpoints (id) on delete cascade,
  user_id uuid not null references public.users (id) on delete cascade,
  submission_type public.submission_type_enum not null,
  file_path text check (char_length(file_path) <= 1024),
  external_url text check (char_length(external_url) <= 2048),
  description text check (char_length(description) <= 5000),
  ai_analysis_result jsonb,
  human_verdict public.verdict_enum,
  status public.submission_status not null default 'pending',
  submitted_at timestamptz not null default now(),
  graded_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint submissions_proof_matches_type check (
    (submission_type = 'file' and file_path is not null and external_url is null)
    or (submission_type = 'url' and external_url is not null and file_path is null)
  )
);

-- Consequences are written before they are executed, one per checkpoint and
-- type, and carry everything an executor needs to resume after a crash.
create table public.consequences (
  id uuid primary key default gen_random_uuid(),
  checkpoint_id uuid not null references public.checkpoints (id),
  goal_id uuid not null references public.goals (id),
  user_id uuid not null references public.users (id),
  consequence_type public.consequence_type_enum not null,
  monetary_amount numeric(10, 2) check (monetary_amount >= 0),
  charity_destination public.charity_enum,
  kompromat_id uuid references public.kompromat (id),
  target_contact_id uuid references public.contacts (id),
  social_platform text,
  roulette_roll jsonb,
  triggered_at timestamptz not null default now(),
  executed_at timestamptz,
  execution_status public.execution_status_enum not null default 'pending',
  attempts integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  lease_expires_at timestamptz,
  lease_owner text,
  provider_reference text,
  last_error text,
  updated_at timestamptz not null default now(),
  constraint consequences_one_per_checkpoint_and_type unique (checkpoint_id, consequence_type),
  constraint consequences_monetary_has_amount
    check (consequence_type <> 'monetary' or (monetary_amount is not null and charity_destination is not null))
);

-- People a goal's owner shares it with; they may read it, nothing more.
create table public.team_members (
  goal_id uuid not null references public.goals (id) on delete cascade,
  user_id uuid not null references public.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (goal_id, user_id)
);

-- Append-only record of every state change that moves money or consequences,
-- and of every kompromat decryption. Never holds content or secrets.
create table public.audit_log (
  id bigint generated always as identity primary key,
  occurred_at timestamptz not null default now(),
  actor text not null default current_user,
  user_id uuid,
  entity text not null,
  entity_id uuid,
  action text not null,
  details jsonb not null default '{}'::jsonb
);

-- -----------------------------------------------------------------------------
-- Indexes: foreign keys RLS filters on, and the deadline scan.
-- -----------------------------------------------------------------------------
create index goals_user_id_idx on public.goals (user_id);
create index checkpoints_goal_id_idx on public.checkpoints (goal_id);
create index submissions_user_id_idx on public.submissions (user_id);
create index submissions_checkpoint_id_idx on public.submissions (checkpoint_id);
create index kompromat_user_id_idx on public.kompromat (user_id);
create index contacts_user_id_idx on public.contacts (user_id);
create index consequences_user_id_idx on public.consequences (user_id);
create index consequences_goal_id_idx on public.consequences (goal_id);
create index team_members_user_id_idx on public.team_members (user_id);
create index audit_log_entity_idx on public.audit_log (entity, entity_id);

create unique index checkpoints_one_final_per_goal on public.checkpoints (goal_id) where is_final;

-- The deadline scan reads only open work, so its cost follows the overdue rows.
create index checkpoints_open_by_deadline on public.checkpoints (deadline) where status = 'pending';
create index goals_active_by_deadline on public.goals (final_deadline) where status = 'active';
create index consequences_due on public.consequences (next_attempt_at)
  where execution_status in ('pending', 'executing');
