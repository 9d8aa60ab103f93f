-- =============================================================================
-- Disputes never free the stake.
--   disputes: each Stripe dispute on a deposit, open until Stripe closes it (won,
--     lost) or returns its funds. The money it held is found by its ledger entries
--     (reference dispute:<id>:held..., with the goal it came from), so a reinstated
--     amount goes back to the goal it was taken from, and a goal's consequences wait
--     while a dispute holds its money.
--   consequences.deferred_reason: why a due consequence waits (its money is under
--     dispute), or, once a dispute is lost, why its money is short.
--   Two money items for the operators: a dispute opened while the user is committed,
--     and a dispute that had to take money unfinished consequences are owed.
-- =============================================================================
create table public.disputes (
  id text primary key check (char_length(id) between 1 and 255),
  -- A money record: kept under the tombstone when the account is erased (see 026).
  user_id uuid references public.users (id) on update cascade on delete restrict,
  payment_intent_id text not null check (char_length(payment_intent_id) between 1 and 255),
  amount_cents bigint not null check (amount_cents > 0),
  status text not null default 'open' check (status in ('open', 'won', 'lost')),
  opened_at timestamptz not null default now(),
  closed_at timestamptz
);

create index disputes_user_idx on public.disputes (user_id);

-- Disputes booked before this migration: open while nothing but their hold is booked.
insert into public.disputes (id, user_id, payment_intent_id, amount_cents, status, opened_at, closed_at)
select split_part(le.reference, ':', 2), min(le.user_id::text)::uuid, min(le.stripe_object_id), sum(le.amount_cents),
       case when bool_or(exists (select 1 from public.ledger_entries w
                                 where w.reference = 'dispute:' || split_part(le.reference, ':', 2) || ':won'))
            then 'won'
            when bool_or(exists (select 1 from public.ledger_entries l
                                 where l.reference = 'dispute:' || split_part(le.reference, ':', 2) || ':lost'))
            then 'lost'
            else 'open' end,
       min(le.created_at), null
from public.ledger_entries le
where le.entry_type = 'dispute_held' and le.stripe_object_id is not null
group by split_part(le.reference, ':', 2);

alter table public.consequences
  add column deferred_reason text check (char_length(deferred_reason) <= 500);

alter type public.money_item_kind add value if not exists 'dispute_while_committed' after 'refund_refused';
alter type public.money_item_kind add value if not exists 'dispute_takes_owed' after 'dispute_while_committed';

-- Only the service reads or writes disputes; operators see them through operator_review.
revoke all on public.disputes from anon, authenticated;
grant all on public.disputes to service_role;
alter table public.disputes enable row level security;
alter table public.disputes force row level security;
