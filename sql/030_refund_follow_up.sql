-- =============================================================================
-- Refunds that stall or are refused reach someone.
--   A refund left planned by a Stripe outage is resent by check_deadlines with
--   the same idempotency key (withdrawal_refunds_planned_idx finds them).
--   A refund Stripe refuses, or that fails after it succeeded, raises a money
--   item of kind refund_refused for the operators: the user's money is back in
--   their available balance, but it could not reach their card.
-- =============================================================================
alter type public.money_item_kind add value if not exists 'refund_refused' after 'transfer_reversed';

create index if not exists withdrawal_refunds_planned_idx on public.withdrawal_refunds (created_at)
  where status = 'planned';
