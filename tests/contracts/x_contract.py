"""X: each request held against X's official SDK `xdk` (generated from X's OpenAPI), and the OAuth 2.0
token and revoke forms against their RFCs.

Operations come from xdk's clients (`url = self.client.base_url + "/2/…"` and the session verb of the
same method); a JSON or multipart body is held against the method's request model: every field must
be one the model declares, at every depth (the models themselves allow extras, X does not), required
fields present, `Literal` values listed. X's OpenAPI describes the OAuth 2.0 token endpoint only as a
`tokenUrl`, and not the revoke endpoint, so their forms are held to RFC 6749 (4.1.3, 6), RFC 7636
(4.5) and RFC 7009 (2.1).
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import pkgutil
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from werkzeug import Request


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    body: Any  # the pydantic request model, or None

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.template}"


_METHOD = re.compile(r"\n    def (\w+)\(\s*self(?P<args>[^)]*)\)")


@functools.cache
def operations() -> tuple[Operation, ...]:
    import xdk

    found: list[Operation] = []
    for info in pkgutil.iter_modules(xdk.__path__):
        source = Path(xdk.__path__[0]) / info.name / "client.py"
        if not source.exists():
            continue
        models = importlib.import_module(f"xdk.{info.name}.models")
        text = source.read_text(encoding="utf-8")
        starts = [m.start() for m in _METHOD.finditer(text)] + [len(text)]
        for start, end in itertools.pairwise(starts):
            chunk = text[start:end]
            url = re.search(r'url = self\.client\.base_url \+ "(/2/[^"]*)"', chunk)
            verb = re.search(r"self\.client\.session\.(get|post|put|delete|patch)\(", chunk)
            if not url or not verb:
                continue
            header = _METHOD.match(chunk)
            model_name = re.search(r"body: (?:Optional\[)?(\w+)", header.group("args")) if header else None
            body = getattr(models, model_name.group(1), None) if model_name else None
            template = url.group(1)
            pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
            found.append(Operation(verb.group(1), template, pattern, body))
    return tuple(found)


def find(method: str, path: str) -> Operation | None:
    matches = [op for op in operations() if op.method == method.lower() and op.pattern.match(path)]
    matches.sort(key=lambda op: op.template.count("{"))
    return matches[0] if matches else None


# -- A pydantic model held closed ------------------------------------------------------------------
def _resolve(tp: Any, model: Any) -> Any:
    if isinstance(tp, str | typing.ForwardRef):
        name = tp if isinstance(tp, str) else tp.__forward_arg__
        module = importlib.import_module(model.__module__)
        return eval(name, {**vars(typing), **vars(module)})  # noqa: S307 (the SDK's own annotations)
    return tp


def check_value(value: Any, tp: Any, where: str, model: Any) -> list[str]:
    from pydantic import BaseModel

    tp = _resolve(tp, model)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        alternatives = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return []
        results = [check_value(value, a, where, model) for a in alternatives]
        return [] if any(not r for r in results) else min(results, key=len)
    if origin is Literal:
        return [] if value in get_args(tp) else [f"{where}: {value!r} is not one of {list(get_args(tp))}"]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return check_model(value, tp, f"{where}.") if isinstance(value, dict) else [f"{where}: expected an object"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        (item,) = get_args(tp)
        return [p for i, v in enumerate(value) for p in check_value(v, item, f"{where}[{i}]", model)]
    if tp is str:
        return [] if isinstance(value, str | bytes) else [f"{where}: expected a string"]
    if tp is bool:
        return [] if isinstance(value, bool) or value in ("true", "false") else [f"{where}: expected a boolean"]
    if tp is int:
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit())
        return [] if ok else [f"{where}: expected an integer"]
    return []


def check_model(value: dict[str, Any], model: Any, where: str = "") -> list[str]:
    fields = {(info.alias or name): info for name, info in model.model_fields.items()}
    problems = []
    for name, info in fields.items():
        if info.is_required() and name not in value:
            problems.append(f"missing required field {where}{name}")
    for name, item in value.items():
        label = f"{where}{name}"
        if name not in fields:
            problems.append(f"unknown field {label}")
            continue
        problems += check_value(item, fields[name].annotation, label, model)
    return problems


# -- OAuth 2.0 forms (RFC 6749, RFC 7636, RFC 7009) ------------------------------------------------
OAUTH_FORMS: dict[str, tuple[set[str], set[str]]] = {
    # grant: (required, optional). client_id is required of a public client (no Basic auth).
    "authorization_code": ({"grant_type", "code", "redirect_uri", "code_verifier"}, {"client_id"}),
    "refresh_token": ({"grant_type", "refresh_token"}, {"scope", "client_id"}),
    "revoke": ({"token"}, {"token_type_hint", "client_id"}),
}


def check_oauth(request: Request) -> tuple[str | None, list[str]]:
    if request.method != "POST":
        return None, []
    problems = []
    if request.mimetype != "application/x-www-form-urlencoded":
        problems.append(f"body is {request.mimetype}, not application/x-www-form-urlencoded")
    form = request.form.to_dict()
    if request.path == "/2/oauth2/revoke":
        kind, operation = "revoke", "POST /2/oauth2/revoke (RFC 7009 2.1)"
        hint = form.get("token_type_hint")
        if hint is not None and hint not in ("access_token", "refresh_token"):
            problems.append(f"token_type_hint {hint!r} is not access_token or refresh_token")
    else:
        kind = form.get("grant_type", "")
        operation = "POST /2/oauth2/token (RFC 6749 4.1.3, 6; RFC 7636 4.5)"
        if kind not in OAUTH_FORMS or kind == "revoke":
            return operation, [*problems, f"grant_type {kind!r} is not authorization_code or refresh_token"]
    required, optional = OAUTH_FORMS[kind]
    basic = request.headers.get("Authorization", "").startswith("Basic ")
    if not basic:
        required = required | {"client_id"}
    problems += [f"missing required field {name}" for name in sorted(required - set(form))]
    problems += [f"unknown field {name}" for name in sorted(set(form) - required - optional)]
    return operation, problems


def check(request: Request) -> tuple[str | None, list[str]]:
    if request.path.startswith("/2/oauth2/"):
        return check_oauth(request)
    operation = find(request.method, request.path)
    if operation is None:
        return None, []
    if operation.body is None:
        return operation.name, []
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        body: Any = {**request.form.to_dict(), **{name: f.read() for name, f in request.files.items()}}
    else:
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            return operation.name, ["body is not JSON"]
    if not isinstance(body, dict):
        return operation.name, ["body is not an object"]
    return operation.name, check_model(body, operation.body)
