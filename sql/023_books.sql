-- =============================================================================
-- The books (issue 18): the ledger agrees with Stripe.
--
-- stripe_movements records what Stripe reported moving in or out of the platform's
-- balance (gross amount and Stripe's fee), once per reference, in the transaction that
-- books it. platform_entries holds the accounts beyond users' holding cells: Stripe's
-- fees, funding fees users paid, platform losses (money Stripe took back that no user
-- still held), money owed to charities after a reversed transfer, and payouts. The books
-- balance when what Stripe holds (movements less fees) equals users' cells (available +
-- reserved + disputed) plus the platform accounts.
-- money_items are what an operator must look at: a loss, a reversed transfer, a
-- reconciliation difference. reconciliation_runs remembers the daily pass.
-- =============================================================================

-- an outside refund failed: +available; a charity transfer came back: -forfeited
alter type public.ledger_entry_type add value if not exists 'refund_reversed' after 'dispute_reinstated';
alter type public.ledger_entry_type add value if not exists 'transfer_reversed' after 'dispute_reinstated';

create type public.platform_account as enum (
  'stripe_fees',      -- what Stripe kept (negative)
  'funding_fees',     -- what users paid on top of their stake to cover Stripe's fee
  'platform_losses',  -- money Stripe took back that no user still held (negative)
  'charity_payable',  -- a reversed transfer: owed to the charity, waiting for an operator
  'payouts'           -- the platform's own money paid out to its bank (negative)
);

create type public.money_item_kind as enum (
  'platform_loss', 'transfer_reversed', 'missing_in_ledger', 'missing_at_stripe', 'amount_differs',
  'unknown_transaction'
);

create table public.stripe_movements (
  id bigint generated always as identity primary key,
  reference text not null constraint stripe_movements_reference_unique unique
    check (char_length(reference) between 1 and 300),
  source_id text,                    -- the Stripe object a balance transaction names as its source
  kind text not null check (char_length(kind) between 1 and 40),
  amount_cents bigint not null,      -- signed: + into the platform's Stripe balance, - out of it
  fee_cents bigint not null default 0 check (fee_cents >= 0),
  balance_transaction_id text,
  user_id uuid references public.users (id) on delete set null,
  created_at timestamptz not null default now()
);

create table public.platform_entries (
  id bigint generated always as identity primary key,
  account public.platform_account not null,
  amount_cents bigint not null check (amount_cents <> 0),
  reference text not null constraint platform_entries_reference_unique unique
    check (char_length(reference) between 1 and 300),
  reason text not null check (char_length(reason) between 1 and 500),
  stripe_object_id text,
  user_id uuid references public.users (id) on delete set null,
  goal_id uuid references public.goals (id) on delete set null,
  consequence_id uuid references public.consequences (id) on delete set null,
  created_at timestamptz not null default now()
);

create table public.money_items (
  id uuid primary key default gen_random_uuid(),
  kind public.money_item_kind not null,
  source_id text not null check (char_length(source_id) between 1 and 300),
  cents bigint,
  stripe_cents bigint,
  ledger_cents bigint,
  user_id uuid references public.users (id) on delete set null,
  details jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  resolved_at timestamptz,
  resolved_by uuid,
  resolution text check (resolution is null or char_length(resolution) between 1 and 2000),
  constraint money_items_once unique (kind, source_id)
);

create table public.reconciliation_runs (
  id bigint generated always as identity primary key,
  covered_from timestamptz not null,
  covered_until timestamptz not null,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  transactions integer not null default 0,
  differences integer not null default 0,
  fees_booked integer not null default 0,
  error text
);

create index stripe_movements_source_idx on public.stripe_movements (source_id) where source_id is not null;
create index stripe_movements_created_idx on public.stripe_movements (created_at);
create index platform_entries_account_idx on public.platform_entries (account);
create index money_items_open_idx on public.money_items (created_at) where resolved_at is null;

-- Backfill: what Stripe moved for the entries booked before this migration. Losses booked
-- before it were only audited (dispute_after_payout): they stay out of the books.
insert into public.stripe_movements (reference, source_id, kind, amount_cents, user_id, created_at)
select 'backfill:' || le.reference, le.stripe_object_id, le.entry_type::text,
       case le.entry_type when 'deposit' then le.amount_cents when 'withdrawal_reversed' then le.amount_cents
                          else -le.amount_cents end,
       le.user_id, le.created_at
from public.ledger_entries le
where le.entry_type in ('deposit', 'withdrawal', 'withdrawal_reversed', 'refund', 'forfeit', 'dispute_lost');

-- Only the service reads or writes the books; operators see them through operator_review.
revoke all on public.stripe_movements, public.platform_entries, public.money_items,
  public.reconciliation_runs from anon, authenticated;
grant all on public.stripe_movements, public.platform_entries, public.money_items,
  public.reconciliation_runs to service_role;
alter table public.stripe_movements enable row level security;
alter table public.stripe_movements force row level security;
alter table public.platform_entries enable row level security;
alter table public.platform_entries force row level security;
alter table public.money_items enable row level security;
alter table public.money_items force row level security;
alter table public.reconciliation_runs enable row level security;
alter table public.reconciliation_runs force row level security;
