"""Gemini: each request held against `google-ai-generativelanguage`, generated from Google's protos.

The operation comes from the package's REST transports (`_get_http_options`, the protos'
`google.api.http` rules): the version in the path picks `generativelanguage_v1` or `_v1beta`. The
body is parsed with protobuf's JSON mapping into the operation's request message, which refuses an
unknown field at any depth, a bad enum name and a value of the wrong type, exactly as Google's
front end does. Required fields are those the generated types document as "Required." (googleapis
writes that beside every `(google.api.field_behavior) = REQUIRED`; proto-plus drops the option).
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from werkzeug import Request

PATH = re.compile(r"^/(v1[a-z0-9]*)/(models|tunedModels|dynamic)/[^/:]+:[A-Za-z]+$")
PACKAGES = {"v1": "google.ai.generativelanguage_v1", "v1beta": "google.ai.generativelanguage_v1beta"}


@dataclass(frozen=True)
class Operation:
    version: str
    method: str
    uri: str
    pattern: re.Pattern[str]
    request_type: Any  # the proto-plus request class

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.uri}"


def _uri_pattern(uri: str) -> re.Pattern[str]:
    """/v1beta/{model=models/*}:generateContent -> a regex; * is one segment, ** any number."""
    out = []
    for i, part in enumerate(re.split(r"\{([^}]+)\}", uri)):
        if i % 2 == 0:
            out.append(re.escape(part))
            continue
        template = part.partition("=")[2] or "*"
        out.append("/".join({"*": "[^/]+", "**": ".+"}.get(seg, re.escape(seg)) for seg in template.split("/")))
    return re.compile("^" + "".join(out) + "$")


@functools.cache
def operations(version: str) -> tuple[Operation, ...]:
    types_module = importlib.import_module(f"{PACKAGES[version]}.types")
    services = importlib.import_module(f"{PACKAGES[version]}.services")
    found: list[Operation] = []
    for info in pkgutil.iter_modules(services.__path__):
        try:
            rest_base = importlib.import_module(f"{services.__name__}.{info.name}.transports.rest_base")
        except ImportError:
            continue
        for holder in vars(rest_base).values():
            if not isinstance(holder, type):
                continue
            for name, cls in vars(holder).items():
                if not (name.startswith("_Base") and hasattr(cls, "_get_http_options")):
                    continue
                request_type = getattr(types_module, f"{name[len('_Base') :]}Request", None)
                if request_type is None:
                    continue
                for rule in cls._get_http_options():
                    found.append(
                        Operation(version, rule["method"], rule["uri"], _uri_pattern(rule["uri"]), request_type)
                    )
    return tuple(found)


def find(method: str, path: str) -> Operation | None:
    match = PATH.match(path)
    if match is None or match.group(1) not in PACKAGES:
        return None
    for operation in operations(match.group(1)):
        if operation.method == method.lower() and operation.pattern.match(path):
            return operation
    return None


# -- Required fields, from the generated types' documentation ---------------------------------------
@functools.cache
def _classes(version: str) -> dict[str, Any]:
    """Every proto-plus message class of a version, by the full name of its descriptor."""
    types_module: ModuleType = importlib.import_module(f"{PACKAGES[version]}.types")
    out: dict[str, Any] = {}

    def visit(cls: Any) -> None:
        try:
            full_name = cls.pb().DESCRIPTOR.full_name
        except (AttributeError, TypeError):
            return
        if full_name in out:
            return
        out[full_name] = cls
        for inner in vars(cls).values():
            if isinstance(inner, type):
                visit(inner)

    for value in vars(types_module).values():
        if isinstance(value, type):
            visit(value)
    return out


def _required(cls: Any) -> set[str]:
    doc = cls.__doc__ or ""
    return set(re.findall(r"^\s{8}(\w+) \([^)]*\):\n\s+Required\.", doc, flags=re.MULTILINE))


def _missing(value: Any, descriptor: Any, version: str, where: str, bound: set[str]) -> list[str]:
    if not isinstance(value, dict):
        return []
    problems = []
    cls = _classes(version).get(descriptor.full_name)
    required = _required(cls) - bound if cls is not None else set()
    for field in descriptor.fields:
        present = field.json_name in value or field.name in value
        label = f"{where}.{field.json_name}" if where else field.json_name
        if field.name in required and not present:
            problems.append(f"missing required field {label}")
        if not present or field.message_type is None:
            continue
        item = value.get(field.json_name, value.get(field.name))
        items = item if isinstance(item, list) else [item]
        for i, one in enumerate(items):
            at = f"{label}[{i}]" if isinstance(item, list) else label
            problems += _missing(one, field.message_type, version, at, set())
    return problems


def check(request: Request) -> tuple[str | None, list[str]]:
    from google.protobuf import json_format

    operation = find(request.method, request.path)
    if operation is None:
        return None, []
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError:
        return operation.name, ["body is not JSON"]
    message = operation.request_type.pb()()
    try:
        json_format.ParseDict(body, message, ignore_unknown_fields=False)
    except json_format.ParseError as error:
        return operation.name, [f"{operation.version}: {error}"]
    bound = set(re.findall(r"\{(\w+)", operation.uri))  # path variables are not in the body
    return operation.name, _missing(body, message.DESCRIPTOR, operation.version, "", bound)
