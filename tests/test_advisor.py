"""Supabase's database advisor (splinter), run as its lints run, over the migrated schema: no security
warning, and every foreign key covered by an index whose leading columns are the key's (erasure's
cascades and detection walk them for every row they touch)."""

from __future__ import annotations

from typing import Any

import psycopg

Conn = psycopg.Connection[dict[str, Any]]
OURS = ("public", "app", "private")

# splinter 0011_function_search_path_mutable: a function whose search_path the caller can change.
MUTABLE_SEARCH_PATH = """
select n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' as function
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
left join pg_depend d on d.objid = p.oid and d.deptype = 'e'
where n.nspname = any(%s) and d.objid is null and p.prokind in ('f', 'p')
  and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%%')
order by 1
"""

# splinter 0001_unindexed_foreign_keys: no index starts with the key's columns, in order.
UNINDEXED_FOREIGN_KEYS = """
with foreign_keys as (
  select cl.relnamespace::regnamespace::text as schema_name, cl.relname as table_name, cl.oid as table_oid,
         ct.conname as fkey_name, ct.conkey as col_attnums
  from pg_constraint ct join pg_class cl on ct.conrelid = cl.oid
  left join pg_depend d on d.objid = cl.oid and d.deptype = 'e'
  where ct.contype = 'f' and d.objid is null and cl.relnamespace::regnamespace::text = any(%s)
), index_ as (
  select pi.indrelid as table_oid, string_to_array(pi.indkey::text, ' ')::smallint[] as col_attnums
  from pg_index pi where pi.indisvalid
)
select fk.schema_name || '.' || fk.table_name || ' ' || fk.fkey_name as key
from foreign_keys fk
left join index_ idx on fk.table_oid = idx.table_oid
  and fk.col_attnums = idx.col_attnums[1:array_length(fk.col_attnums, 1)]
group by 1 having bool_and(idx.table_oid is null)
order by 1
"""

# splinter 0013_rls_disabled_in_public, 0010_security_definer_view.
RLS_DISABLED = """
select n.nspname || '.' || c.relname as "table" from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity order by 1
"""
SECURITY_DEFINER_VIEWS = """
select n.nspname || '.' || c.relname as view from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and c.relkind = 'v'
  and not coalesce('security_invoker=true' = any(c.reloptions) or 'security_invoker=on' = any(c.reloptions), false)
order by 1
"""


def test_no_function_has_a_mutable_search_path(owner: Conn) -> None:
    assert [r["function"] for r in owner.execute(MUTABLE_SEARCH_PATH, [list(OURS)]).fetchall()] == []


def test_every_foreign_key_has_a_covering_index(owner: Conn) -> None:
    missing = [r["key"] for r in owner.execute(UNINDEXED_FOREIGN_KEYS, [list(OURS)]).fetchall()]
    assert missing == [], "\n".join(missing)


def test_every_public_table_has_rls_and_no_view_runs_as_its_owner(owner: Conn) -> None:
    assert [r["table"] for r in owner.execute(RLS_DISABLED).fetchall()] == []
    assert [r["view"] for r in owner.execute(SECURITY_DEFINER_VIEWS).fetchall()] == []


def test_the_advisor_queries_find_what_they_look_for(owner: Conn) -> None:
    """Each lint catches its own kind of fault (so a clean answer means something)."""
    with owner.transaction(force_rollback=True):
        owner.execute("create function private.advisor_probe() returns int language sql as 'select 1'")
        owner.execute("create table public.advisor_parent (id int primary key)")
        owner.execute(
            "create table public.advisor_child (id int primary key, parent int references public.advisor_parent)"
        )
        owner.execute("create view public.advisor_view as select 1 as one")
        functions = [r["function"] for r in owner.execute(MUTABLE_SEARCH_PATH, [list(OURS)]).fetchall()]
        keys = [r["key"] for r in owner.execute(UNINDEXED_FOREIGN_KEYS, [list(OURS)]).fetchall()]
        tables = [r["table"] for r in owner.execute(RLS_DISABLED).fetchall()]
        views = [r["view"] for r in owner.execute(SECURITY_DEFINER_VIEWS).fetchall()]
    assert "private.advisor_probe()" in functions
    assert any(k.startswith("public.advisor_child ") for k in keys)
    assert {"public.advisor_parent", "public.advisor_child"} <= set(tables)
    assert views == ["public.advisor_view"]
