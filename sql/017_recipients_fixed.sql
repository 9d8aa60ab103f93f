-- =============================================================================
-- What a consequence needs is fixed when it is created: one delivery row per
-- verified target (app.fix_consequence_recipients, a trigger on consequences).
-- Consequences still unfinished from before get theirs now, from the targets
-- they would have read at execution.
-- =============================================================================
insert into public.consequence_deliveries (consequence_id, channel, contact_id, recipient)
select c.id, 'email', t.id, t.email
from public.consequences c
join public.contacts t on t.user_id = c.user_id and t.verified and t.declined_at is null
  and (t.id = c.target_contact_id or (c.target_contact_id is null and 'consequence_target' = any (t.role)))
where c.consequence_type = 'humiliation_email' and c.execution_status in ('pending', 'executing')
  and not exists (select 1 from public.consequence_deliveries d where d.consequence_id = c.id)
on conflict do nothing;

insert into public.consequence_deliveries (consequence_id, channel, recipient)
select c.id, 'x', 'x' from public.consequences c
where c.consequence_type = 'humiliation_x' and c.execution_status in ('pending', 'executing')
on conflict do nothing;

create index consequence_deliveries_contact_idx on public.consequence_deliveries (contact_id)
  where contact_id is not null;
