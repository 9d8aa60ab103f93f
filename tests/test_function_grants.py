"""Who may call what, read from the catalogue: no function in our schemas is executable by PUBLIC,
and anon may execute only the token-gated calls an emailed link makes. A new function fails here
until its grants are deliberate."""

from __future__ import annotations

from typing import Any

import psycopg

Conn = psycopg.Connection[dict[str, Any]]

# The pages opened from emailed links call these with the token the link carries, as anon.
ANON_MAY_EXECUTE = {
    "public.confirm_contact(token text)",
    "public.decline_contact(token text)",
    "public.unsubscribe_reminders(token text)",
    "private.answer_contact_verification(p_token text, p_decline boolean)",
    "private.unsubscribe_reminders(p_token text)",
}

EXECUTABLE = """
select n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' as function,
       p.proacl is null or exists (select 1 from aclexplode(p.proacl) a
                                   where a.grantee = 0 and a.privilege_type = 'EXECUTE') as by_public,
       has_function_privilege('anon', p.oid, 'EXECUTE') as by_anon
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
left join pg_depend d on d.objid = p.oid and d.deptype = 'e'
where n.nspname in ('public', 'app', 'private') and d.objid is null
order by 1
"""


def test_no_function_is_executable_by_public_or_anon_unless_listed(owner: Conn) -> None:
    rows = owner.execute(EXECUTABLE).fetchall()
    assert len(rows) > 50  # the catalogue was read
    by_public = [r["function"] for r in rows if r["by_public"]]
    by_anon = sorted(r["function"] for r in rows if r["by_anon"] and r["function"] not in ANON_MAY_EXECUTE)
    assert by_public == [], "executable by PUBLIC:\n" + "\n".join(by_public)
    assert by_anon == [], "executable by anon and not listed:\n" + "\n".join(by_anon)
    listed = {r["function"] for r in rows if r["by_anon"]}
    assert listed == ANON_MAY_EXECUTE  # and the list names nothing that no longer exists


def test_the_catalogue_check_catches_a_function_left_to_public(owner: Conn) -> None:
    with owner.transaction(force_rollback=True):
        owner.execute("create function app.grants_probe() returns int language sql as 'select 1'")
        owner.execute("grant execute on function app.grants_probe() to public")
        rows = owner.execute(EXECUTABLE).fetchall()
    probe = next(r for r in rows if r["function"] == "app.grants_probe()")
    assert probe["by_public"] and probe["by_anon"]
