-- Challenge phrases (issue 20). A goal with proof_challenge gives each checkpoint
-- a short random phrase when the checkpoint opens: when the goal is activated
-- for the first, and when the one before is completed or missed for the next.
-- Only the open checkpoint has one, so proof cannot be made ahead for later
-- checkpoints. The phrase is recorded on the checkpoint (the owner reads it there
-- and in every reminder) and sent to the grader with the proof.

create or replace function private.challenge_phrase() returns text
language sql volatile
set search_path = ''
as $$
  with words as (
    select array[
      'amber', 'anchor', 'apple', 'arrow', 'badger', 'banjo', 'barley', 'beacon', 'birch', 'bison',
      'bramble', 'breeze', 'bucket', 'cactus', 'canoe', 'carrot', 'cedar', 'cello', 'cherry', 'cinder',
      'clover', 'cobalt', 'comet', 'copper', 'coral', 'cricket', 'crystal', 'dahlia', 'daisy', 'delta',
      'ember', 'falcon', 'fennel', 'fern', 'fiddle', 'flint', 'fox', 'garnet', 'ginger', 'glacier',
      'granite', 'hazel', 'heron', 'honey', 'indigo', 'iris', 'ivory', 'jasper', 'juniper', 'kettle',
      'kiwi', 'lantern', 'lemon', 'lilac', 'linen', 'lotus', 'magnet', 'maple', 'marble', 'meadow',
      'mango', 'mint', 'moss', 'nectar', 'nutmeg', 'oak', 'olive', 'onyx', 'orchid', 'otter',
      'paddle', 'pebble', 'pepper', 'pine', 'plum', 'pollen', 'poppy', 'quartz', 'quill', 'radish',
      'raven', 'reef', 'river', 'robin', 'saffron', 'sage', 'salmon', 'sparrow', 'spruce', 'thistle',
      'thunder', 'tulip', 'velvet', 'violet', 'walnut', 'willow', 'wren', 'yarrow', 'zephyr', 'zinc'
    ] as list
  )
  select w.list[1 + (private.random_u32() % 100)::int] || ' ' || w.list[1 + (private.random_u32() % 100)::int]
         || ' ' || lpad(((private.random_u32() % 1000)::int)::text, 3, '0')
  from words w
$$;

-- Issues the phrase of the goal's open checkpoint (the earliest pending one) if it has none yet.
create or replace function app.issue_proof_phrase(p_goal_id uuid) returns void
language sql volatile security definer
set search_path = ''
as $$
  update public.checkpoints cp set proof_phrase = private.challenge_phrase()
  where cp.id = (
    select c.id from public.checkpoints c join public.goals g on g.id = c.goal_id
    where c.goal_id = p_goal_id and g.proof_challenge and g.status = 'active' and c.status = 'pending'
    order by c.deadline, c.order_position limit 1
  ) and cp.proof_phrase is null
$$;

-- One trigger function for both openings: a goal activated opens its first checkpoint, a
-- checkpoint completed or missed (or added) opens the goal's next one.
create or replace function app.open_checkpoint() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_table_name = 'goals' then
    perform app.issue_proof_phrase(new.id);
  else
    perform app.issue_proof_phrase(new.goal_id);
  end if;
  return null;
end
$$;

create or replace trigger checkpoints_open_next after insert or update of status on public.checkpoints
  for each row execute function app.open_checkpoint();
create or replace trigger goals_open_first after update of status on public.goals
  for each row when (new.status = 'active' and new.proof_challenge) execute function app.open_checkpoint();
-- The two functions they called before; nothing else refers to them.
drop function if exists app.open_next_checkpoint();
drop function if exists app.open_first_checkpoint();

revoke all on function private.challenge_phrase() from public, anon, authenticated;
revoke all on function app.issue_proof_phrase(uuid) from public, anon, authenticated;
revoke all on function app.open_checkpoint() from public, anon, authenticated;
grant execute on function app.issue_proof_phrase(uuid) to service_role;
