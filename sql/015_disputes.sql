-- =============================================================================
-- Disputes: a charged-back deposit's amount leaves what the user can use while
-- the bank decides (disputed), is debited when Stripe withdraws the funds, and
-- comes back to available when the dispute is won.
-- =============================================================================
alter type public.ledger_entry_type add value if not exists 'dispute_held';       -- available/reserved -> disputed
alter type public.ledger_entry_type add value if not exists 'dispute_lost';       -- disputed -> gone
alter type public.ledger_entry_type add value if not exists 'dispute_reinstated'; -- disputed -> available

alter table public.holding_cells
  add column disputed_cents bigint not null default 0
    constraint holding_cells_disputed_never_negative check (disputed_cents >= 0);
alter table public.ledger_entries add column disputed_delta bigint not null default 0;
