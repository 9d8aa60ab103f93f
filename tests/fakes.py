"""Local HTTP stand-ins for providers. The real SDKs talk to them through their
documented base-URL settings, so the SDK code path runs and tests can assert
exactly what was sent."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


@dataclass
class Recorded:
    path: str
    form: dict[str, str]
    headers: dict[str, str]
    json: Any = None


@dataclass
class FakeStripe:
    """Customers, PaymentIntents, refunds and transfers, with Stripe's idempotency-key replay."""

    server: HTTPServer
    requests: list[Recorded] = field(default_factory=list)
    faults: dict[str, list[int]] = field(default_factory=dict)
    refund_status: str = "succeeded"
    _by_key: dict[str, Response] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> FakeStripe:
        for path, kind in (
            ("/v1/customers", "customer"),
            ("/v1/payment_intents", "payment_intent"),
            ("/v1/refunds", "refund"),
            ("/v1/transfers", "transfer"),
        ):
            self.server.expect_request(path, method="POST").respond_with_handler(self._handler(kind))
        return self

    def fail_next(self, path: str, *statuses: int) -> None:
        self.faults.setdefault(path, []).extend(statuses)

    def created(self, path: str) -> list[Recorded]:
        """Requests that created an object (replays of a known idempotency key excluded)."""
        seen: set[str] = set()
        result = []
        for rec in self.requests:
            key = rec.headers.get("Idempotency-Key", "")
            if rec.path == path and key not in seen:
                seen.add(key)
                result.append(rec)
        return result

    def _handler(self, kind: str) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            key = request.headers.get("Idempotency-Key", "")
            with self._lock:
                faults = self.faults.get(request.path)
                if faults:
                    status = faults.pop(0)
                    return Response(
                        json.dumps({"error": {"type": "api_error", "code": f"fault_{status}", "message": "injected"}}),
                        status=status,
                        content_type="application/json",
                    )
                self.requests.append(Recorded(request.path, dict(request.form), dict(request.headers)))
                if key and key in self._by_key:
                    return self._by_key[key]
                response = Response(
                    json.dumps(self._object(kind, request.form)), status=200, content_type="application/json"
                )
                if key:
                    self._by_key[key] = response
                return response

        return handle

    def _object(self, kind: str, form: Any) -> dict[str, Any]:
        n = next(self._ids)
        metadata = {k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")}
        if kind == "customer":
            return {"id": f"cus_{n}", "object": "customer", "metadata": metadata}
        if kind == "payment_intent":
            return {
                "id": f"pi_{n}",
                "object": "payment_intent",
                "client_secret": f"pi_{n}_secret_{n}",
                "status": "requires_payment_method",
                "amount": int(form["amount"]),
                "currency": form["currency"],
                "metadata": metadata,
            }
        if kind == "refund":
            return {
                "id": f"re_{n}",
                "object": "refund",
                "status": self.refund_status,
                "amount": int(form["amount"]),
                "payment_intent": form.get("payment_intent"),
                "metadata": metadata,
            }
        return {
            "id": f"tr_{n}",
            "object": "transfer",
            "amount": int(form["amount"]),
            "destination": form.get("destination"),
            "metadata": metadata,
        }


def stripe_signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header, made the way Stripe makes it."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def stripe_event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "id": event_id or f"evt_{hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]}",
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": obj},
        }
    ).encode()


@dataclass
class FakeSendGrid:
    """POST /v3/mail/send, answering 202 with an X-Message-Id, or injected faults."""

    server: HTTPServer
    mails: list[Recorded] = field(default_factory=list)
    faults: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    attempts: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> FakeSendGrid:
        self.server.expect_request("/v3/mail/send", method="POST").respond_with_handler(self._send)
        return self

    def fail_next(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.faults.append((status, headers or {}))

    def _send(self, request: Request) -> Response:
        with self._lock:
            self.attempts += 1
            if self.faults:
                status, headers = self.faults.pop(0)
                body = {"errors": [{"field": "personalizations.0.to", "message": "injected"}]}
                return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")
            self.mails.append(Recorded(request.path, {}, dict(request.headers), json=request.get_json()))
            return Response("", status=202, headers={"X-Message-Id": f"sg-{next(self._ids)}"})

    def to(self, mail: Recorded) -> list[str]:
        return [t["email"] for p in mail.json["personalizations"] for t in p["to"]]

    def text(self, mail: Recorded) -> str:
        return "\n".join(c["value"] for c in mail.json.get("content", []))
