-- =============================================================================
-- Every foreign key has an index that starts with its columns (Supabase's advisor,
-- unindexed_foreign_keys). Deleting or erasing a parent row (a contact, a kompromat
-- item, a user's tombstone, a withdrawal) must find its children without scanning
-- the child table, for every row erasure's cascades and set-nulls touch. Keys that
-- are null for most rows get partial indexes: an equality lookup implies not null.
-- =============================================================================
create index if not exists consequences_decided_by_idx on public.consequences (decided_by)
  where decided_by is not null;
create index if not exists consequences_kompromat_idx on public.consequences (kompromat_id)
  where kompromat_id is not null;
create index if not exists consequences_target_contact_idx on public.consequences (target_contact_id)
  where target_contact_id is not null;
create index if not exists goal_change_requests_user_idx on public.goal_change_requests (user_id);
create index if not exists goals_major_kompromat_idx on public.goals (major_kompromat_id)
  where major_kompromat_id is not null;
create index if not exists goals_minor_kompromat_idx on public.goals (minor_kompromat_id)
  where minor_kompromat_id is not null;
create index if not exists goals_witness_contact_idx on public.goals (witness_contact_id)
  where witness_contact_id is not null;
create index if not exists ledger_entries_consequence_idx on public.ledger_entries (consequence_id)
  where consequence_id is not null;
create index if not exists money_items_user_idx on public.money_items (user_id)
  where user_id is not null;
create index if not exists notifications_recipient_contact_idx on public.notifications (recipient_contact_id)
  where recipient_contact_id is not null;
create index if not exists platform_entries_consequence_idx on public.platform_entries (consequence_id)
  where consequence_id is not null;
create index if not exists platform_entries_goal_idx on public.platform_entries (goal_id)
  where goal_id is not null;
create index if not exists platform_entries_user_idx on public.platform_entries (user_id)
  where user_id is not null;
create index if not exists roulette_rolls_goal_idx on public.roulette_rolls (goal_id);
create index if not exists stripe_movements_user_idx on public.stripe_movements (user_id)
  where user_id is not null;
create index if not exists withdrawal_refunds_withdrawal_idx on public.withdrawal_refunds (withdrawal_id);
create index if not exists witness_requests_contact_idx on public.witness_requests (contact_id);
