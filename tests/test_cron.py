"""check_missed_deadlines reads its URL and key from Vault and posts through pg_net.
Vault and pg_net exist only on Supabase, so each test builds stand-ins inside a
transaction it rolls back."""

from __future__ import annotations

from typing import Any

import psycopg

STANDINS = """
create schema vault;
create table vault.decrypted_secrets (name text primary key, decrypted_secret text);
create schema net;
create table net.calls (id bigserial primary key, url text, body jsonb, headers jsonb, timeout int);
create function net.http_post(url text, body jsonb, headers jsonb, timeout_milliseconds int)
returns bigint language sql as $$
  insert into net.calls (url, body, headers, timeout)
  values (url, body, headers, timeout_milliseconds) returning id
$$;
"""


def test_cron_posts_to_check_deadlines_with_vault_credentials(owner: psycopg.Connection[Any]) -> None:
    with owner.transaction(force_rollback=True):
        owner.execute(STANDINS)
        owner.execute(
            "insert into vault.decrypted_secrets values"
            " ('check_deadlines_url', 'https://fn.example/check_deadlines'),"
            " ('check_deadlines_service_key', 'sb_secret_cron0123456789')"
        )
        owner.execute("set local role service_role")
        request_id = owner.execute("select app.check_missed_deadlines() as id").fetchone()
        owner.execute("reset role")
        call = owner.execute("select * from net.calls").fetchone()
    assert request_id is not None and call is not None
    assert request_id["id"] == call["id"]
    assert call["url"] == "https://fn.example/check_deadlines"
    assert call["headers"] == {
        "Content-Type": "application/json",
        "apikey": "sb_secret_cron0123456789",
        "Authorization": "Bearer sb_secret_cron0123456789",
    }
    assert call["body"] == {"source": "pg_cron"}


def test_cron_without_vault_secrets_posts_nothing(owner: psycopg.Connection[Any]) -> None:
    with owner.transaction(force_rollback=True):
        owner.execute(STANDINS)
        result = owner.execute("select app.check_missed_deadlines() as id").fetchone()
        calls = owner.execute("select count(*) as n from net.calls").fetchone()
    assert result == {"id": None}
    assert calls == {"n": 0}
