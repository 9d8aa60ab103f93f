-- =============================================================================
-- Out-of-order Stripe events: an event about something the ledger does not hold
-- yet (a refund whose payment has not arrived) is parked, not marked applied,
-- and applied in the transaction that books its subject.
-- =============================================================================
alter table public.stripe_events
  add column parked_on text,
  add column parked_object jsonb,
  add constraint stripe_events_parked_whole check ((parked_on is null) = (parked_object is null));

create index stripe_events_parked_idx on public.stripe_events (parked_on) where parked_on is not null;
