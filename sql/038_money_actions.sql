-- =============================================================================
-- Money items are resolved by action, not only by a note (operator_review's
-- resolve_money, app.resolve_money_item):
--   paid_outside (ledger): an operator paid the user back outside Stripe (a bank
--     transfer): -available. Stripe still holds that money, now the platform's:
--     outside_payments (platform account) +.
--   write_off: a reconciliation difference booked as what Stripe says, the
--     difference going to platform_losses (a movement of kind write_off).
-- =============================================================================
alter type public.ledger_entry_type add value if not exists 'paid_outside' after 'transfer_reversed';
alter type public.platform_account add value if not exists 'outside_payments' after 'payouts';
