"""Stripe: each request held against the request types stripe-python generates from Stripe's OpenAPI.

The operations (method, path, parameter type) are read from the SDK's own service classes, whose
`self._request("post", "/v1/…")` calls and `params: "…Params"` annotations are generated from the
same OpenAPI document as the types in `stripe.params`. Stripe refuses a parameter it does not know at
any depth, so every nested object is held closed; open enums (`Literal[…] | str`) are held to their
listed values; `Stripe-Version` must be the version the SDK pins (the one the types describe).
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import types
import typing
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ForwardRef, Literal, NotRequired, Required, Union, get_args, get_origin

from werkzeug import Request


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    params: str | None  # the name of the stripe.params class, None when the call takes no params

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.template}"


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


def _params_name(node: ast.expr | None) -> str | None:
    """`"XParams"` or `Optional["XParams"]` -> XParams."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.strip('"')
    if isinstance(node, ast.Subscript):
        return _params_name(node.slice)
    return None


def _request_call(fn: ast.FunctionDef) -> tuple[str, str] | None:
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "_request" or len(node.args) < 2:
            continue
        method, path = node.args[0], node.args[1]
        if isinstance(path, ast.Call) and isinstance(path.func, ast.Attribute):
            path = path.func.value  # "…{id}".format(...)
        if isinstance(method, ast.Constant) and isinstance(path, ast.Constant):
            return str(method.value), str(path.value)
    return None


@functools.cache
def operations() -> tuple[Operation, ...]:
    import stripe

    found: list[Operation] = []
    for source in sorted(Path(stripe.__file__).parent.rglob("_*_service.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            call = _request_call(fn)
            if call is None or not call[1].startswith("/v1/"):
                continue
            params = next((a.annotation for a in fn.args.args if a.arg == "params"), None)
            found.append(Operation(call[0], call[1], _path_pattern(call[1]), _params_name(params)))
    return tuple(found)


def find(method: str, path: str) -> Operation | None:
    matches = [op for op in operations() if op.method == method.lower() and op.pattern.match(path)]
    # A literal segment beats a placeholder: /v1/webhook_endpoints is not /v1/webhook_endpoints/{id}.
    matches.sort(key=lambda op: op.template.count("{"))
    return matches[0] if matches else None


def pinned_version() -> str:
    from stripe._api_version import _ApiVersion

    return str(_ApiVersion.CURRENT)


# -- The form body as the SDK encodes it: a[b][0]=x ------------------------------------------------
def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        segments = [head] + (re.findall(r"\[([^\]]*)\]", "[" + rest) if rest else [])
        node = root
        for segment in segments[:-1]:
            node = node.setdefault(segment, {})
            if not isinstance(node, dict):
                raise ValueError(f"{key} mixes a value and an object")
        node[segments[-1]] = value
    return root


# -- The types ------------------------------------------------------------------------------------
def _namespace(owner: type) -> dict[str, Any]:
    import stripe.params

    return {**vars(typing), **vars(stripe.params), **vars(sys.modules[owner.__module__])}


def _resolve(tp: Any, owner: type) -> Any:
    if isinstance(tp, str):
        return eval(tp, _namespace(owner))  # noqa: S307 (the SDK's own annotations)
    if isinstance(tp, ForwardRef):
        return eval(tp.__forward_arg__, _namespace(owner))  # noqa: S307
    return tp


def _fields(cls: type) -> dict[str, tuple[Any, bool]]:
    """A generated TypedDict's own fields (the RequestOptions keys travel as headers, not params)."""
    from stripe._request_options import RequestOptions

    options = set(RequestOptions.__annotations__)
    required = set(getattr(cls, "__required_keys__", ()))
    out: dict[str, tuple[Any, bool]] = {}
    for name, annotation in cls.__annotations__.items():
        if name in options:
            continue
        tp = _resolve(annotation, cls)
        if get_origin(tp) in (NotRequired, Required):
            tp = get_args(tp)[0]
        out[name] = (tp, name in required)
    return out


def _is_typeddict(tp: Any) -> bool:
    import typing_extensions

    return isinstance(tp, type) and typing_extensions.is_typeddict(tp)


def _listed(values: list[str]) -> str:
    shown = ", ".join(values[:6])
    return f"one of [{shown}{', …' if len(values) > 6 else ''}] ({len(values)} values)"


def _alternatives(tp: Any, owner: type) -> list[Any]:
    union = get_origin(tp) in (Union, types.UnionType)
    alts = [_resolve(a, owner) for a in get_args(tp)] if union else [tp]
    # An open enum (Literal[...] | str) is held to its listed values.
    if any(get_origin(a) is Literal and any(v != "" for v in get_args(a)) for a in alts):
        alts = [a for a in alts if a is not str]
    return alts


def check_value(value: Any, tp: Any, where: str, owner: type) -> list[str]:
    tp = _resolve(tp, owner)
    alternatives = _alternatives(tp, owner)
    if len(alternatives) > 1:
        results = [check_value(value, alt, where, owner) for alt in alternatives]
        if any(not r for r in results):
            return []
        literals = [v for alt in alternatives if get_origin(alt) is Literal for v in get_args(alt)]
        if literals and isinstance(value, str):
            return [f"{where}: {value!r} is not {_listed(sorted(map(str, literals)))}"]
        return min(results, key=len)
    tp = alternatives[0]
    origin = get_origin(tp)
    if tp is Any:
        return []
    if origin is Literal:
        allowed = [str(v).lower() if isinstance(v, bool) else str(v) for v in get_args(tp)]
        return [] if value in allowed else [f"{where}: {value!r} is not {_listed(allowed)}"]
    if tp is str:
        return [] if isinstance(value, str) else [f"{where}: expected a string"]
    if tp is bool:
        return [] if value in ("true", "false") else [f"{where}: {value!r} is not a boolean"]
    if tp is int:
        return (
            []
            if isinstance(value, str) and re.fullmatch(r"-?\d+", value)
            else [f"{where}: {value!r} is not an integer"]
        )
    if tp is float:
        ok = isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value)
        return [] if ok else [f"{where}: {value!r} is not a number"]
    if origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, dict) or not all(k.isdigit() for k in value):
            return [f"{where}: expected a list"]
        (item,) = get_args(tp)
        return [p for k, v in value.items() for p in check_value(v, item, f"{where}[{k}]", owner)]
    if origin in (dict, typing.Dict) or getattr(origin, "__name__", "") == "UntypedStripeObject":  # noqa: UP006
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        item = get_args(tp)[-1] if get_args(tp) else Any
        return [p for k, v in value.items() for p in check_value(v, item, f"{where}[{k}]", owner)]
    if _is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        return check_object(value, tp, where)
    return [f"{where}: no rule for {tp!r}"]


def check_object(value: dict[str, Any], cls: type, where: str = "") -> list[str]:
    fields = _fields(cls)
    problems = []
    for name, (_, required) in fields.items():
        if required and name not in value:
            problems.append(f"missing required parameter {f'{where}[{name}]' if where else name}")
    for name, item in value.items():
        label = f"{where}[{name}]" if where else name
        if name not in fields:
            problems.append(f"unknown parameter {label}")
            continue
        problems += check_value(item, fields[name][0], label, cls)
    return problems


def check(request: Request) -> tuple[str | None, list[str]]:
    import stripe.params

    operation = find(request.method, request.path)
    if operation is None:
        return None, []
    problems: list[str] = []
    version = request.headers.get("Stripe-Version")
    if version != pinned_version():
        problems.append(f"Stripe-Version {version!r} is not the SDK's pinned {pinned_version()!r}")
    raw = request.query_string.decode() if request.method == "GET" else request.get_data(as_text=True)
    if request.method != "GET" and raw and request.mimetype != "application/x-www-form-urlencoded":
        problems.append(f"body is {request.mimetype}, not a form")
    try:
        params = decode_form(urllib.parse.parse_qsl(raw, keep_blank_values=True))
    except ValueError as error:
        return operation.name, [*problems, str(error)]
    if operation.params is None:
        if params:
            problems.append(f"takes no parameters, got {sorted(params)}")
        return operation.name, problems
    cls = getattr(stripe.params, operation.params)
    return operation.name, problems + check_object(params, cls)
