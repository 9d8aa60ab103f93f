"""Every request the stand-ins receive, held against the provider's own published description.

A stand-in accepts whatever it is sent; these checks refuse what the real provider would. Each
provider module answers, for one recorded request, the operation it is (or None when no description
covers it, which fails the run) and the problems found. The descriptions come from packages the
providers publish (development dependencies), never from copied files:

- Stripe: the request types stripe-python generates from Stripe's OpenAPI for its pinned version
  (`stripe.params.*Params`), and the method and path of each service call in the same SDK;
- Gemini: the `v1` and `v1beta` protos of `google-ai-generativelanguage`, through their
  `google.api.http` rules and the proto3 JSON mapping;
- X: the request models of X's SDK `xdk` (generated from X's OpenAPI), and RFC 6749, 7636 and 7009
  for the OAuth 2.0 token and revoke forms;
- SendGrid: a schema written from SendGrid's published Mail Send reference (`sendgrid_contract`).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request


@dataclass(frozen=True)
class Finding:
    provider: str
    operation: str | None
    method: str
    path: str
    problems: tuple[str, ...]

    def describe(self) -> str:
        what = self.operation or "no described operation"
        return f"{self.provider} {self.method} {self.path} ({what}): " + "; ".join(self.problems)


@dataclass
class Tally:
    """What the whole session checked: requests and distinct operations per provider."""

    requests: Counter[str] = field(default_factory=Counter)
    operations: dict[str, set[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, finding: Finding) -> None:
        with self.lock:
            self.requests[finding.provider] += 1
            if finding.operation:
                self.operations.setdefault(finding.provider, set()).add(finding.operation)
            if finding.problems:
                self.failures.append(finding.describe())

    def summary(self) -> str:
        total = sum(self.requests.values())
        ops = sum(len(v) for v in self.operations.values())
        per = ", ".join(
            f"{name} {self.requests[name]} requests / {len(self.operations.get(name, ()))} operations"
            for name in sorted(self.requests)
        )
        return (
            f"provider contracts: {total} requests over {ops} operations checked ({per}); {len(self.failures)} refused"
        )


TALLY = Tally()


def provider_of(path: str) -> str | None:
    """Which provider's stand-in a path belongs to; None for other local servers (pages, JWKS, Storage)."""
    from tests.contracts import gemini_contract

    if gemini_contract.PATH.match(path):
        return "gemini"
    if path.startswith("/v1/"):
        return "stripe"
    if path.startswith("/v3/"):
        return "sendgrid"
    if path.startswith("/2/"):
        return "x"
    return None


def replayed(request: Request) -> Request:
    """The recorded request rebuilt from its raw bytes: its parsed form and files were closed with the
    request, but the server kept the body (pytest-httpserver reads it before dispatching)."""
    from werkzeug.test import EnvironBuilder

    headers = [(k, v) for k, v in request.headers.items() if k.lower() != "content-length"]
    builder = EnvironBuilder(
        path=request.path,
        method=request.method,
        query_string=request.query_string.decode("latin-1"),
        headers=headers,
        data=request.get_data(),
    )
    return Request(builder.get_environ())


def check(recorded: Request) -> Finding | None:
    """One recorded request held against its provider's description; None when it is no provider's."""
    from tests.contracts import gemini_contract, sendgrid_contract, stripe_contract, x_contract

    provider = provider_of(recorded.path)
    if provider is None:
        return None
    request = replayed(recorded)
    checker: Any = {
        "stripe": stripe_contract,
        "gemini": gemini_contract,
        "sendgrid": sendgrid_contract,
        "x": x_contract,
    }[provider]
    operation, problems = checker.check(request)
    if operation is None and not problems:
        problems = ["no published description covers this operation"]
    return Finding(provider, operation, request.method, request.path, tuple(problems))


def check_log(log: list[tuple[Request, Any]]) -> list[str]:
    """Check every logged request; the problems found, each naming its request."""
    found: list[str] = []
    for request, _ in log:
        finding = check(request)
        if finding is None:
            continue
        TALLY.add(finding)
        if finding.problems:
            found.append(finding.describe())
    return found
