"""A small function the tests serve through functions-framework to drive shared.http."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
from pydantic import BaseModel, Field

from shared import db
from shared.http import Auth, Call, Reply, endpoint


class EchoBody(BaseModel):
    message: str = Field(min_length=1, max_length=100)
    count: int = Field(default=1, ge=1, le=10)


@functions_framework.http
@endpoint("echo", body=EchoBody, auth=Auth.USER)
def echo(call: Call[EchoBody]) -> dict[str, Any]:
    assert call.caller is not None and call.caller.user_id is not None
    with db.as_user(call.caller.user_id) as conn:
        row = conn.execute("select count(*) as n from public.goals").fetchone()
    return {
        "user_id": str(call.caller.user_id),
        "echo": call.body.message * call.body.count,
        "goals_visible": row["n"] if row else None,
    }


@functions_framework.http
@endpoint("service_only", body=None, auth=Auth.SERVICE)
def service_only(call: Call[None]) -> Reply:
    return Reply({"ok": True, "role": call.caller.role if call.caller else None}, status=202)


@functions_framework.http
@endpoint("crash", body=None, auth=Auth.NONE)
def crash(call: Call[None]) -> dict[str, Any]:
    raise RuntimeError("sk_live_SECRET_in_an_exception_message")


@functions_framework.http
@endpoint("forbidden_write", body=None, auth=Auth.USER)
def forbidden_write(call: Call[None]) -> dict[str, Any]:
    assert call.caller is not None and call.caller.user_id is not None
    with db.as_user(call.caller.user_id) as conn:
        conn.execute("update public.users set holding_cell_balance = 1000 where id = %s", [call.caller.user_id])
    return {"ok": True}


def not_used(request: flask.Request) -> str:
    return "unused"
