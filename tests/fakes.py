"""Local HTTP stand-ins for providers. The real SDKs talk to them through their
documented base-URL settings, so the SDK code path runs and tests can assert
exactly what was sent. Each can inject faults: an HTTP status, or a timeout
(the request is processed, then the answer comes too late), at random or in
order, and can SIGKILL a process right after processing a request."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import random
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

Fault = int | str  # an HTTP status, or "timeout"


@dataclass
class Recorded:
    path: str
    form: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class _Faulty:
    """Fault injection shared by the stand-ins."""

    faults: dict[str, list[Fault]] = field(default_factory=dict)
    fault_rate: float = 0.0
    fault_choices: tuple[Fault, ...] = (500, 503, "timeout")
    timeout_delay: float = 1.0
    delay_each: float = 0.0  # latency added to every processed request
    kill_on: dict[str, int] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(1234))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, path: str, *faults: Fault) -> None:
        self.faults.setdefault(path, []).extend(faults)

    def _fault_for(self, path: str) -> Fault | None:
        queued = self.faults.get(path)
        if queued:
            return queued.pop(0)
        if self.fault_rate and self.rng.random() < self.fault_rate:
            return self.rng.choice(self.fault_choices)
        return None

    def _error(self, status: int) -> Response:
        body = {
            "error": {"type": "api_error", "code": f"fault_{status}", "message": "injected"},
            "errors": [{"field": "personalizations.0.to", "message": "injected"}],
        }
        headers = {"Retry-After": "0"} if status == 429 else {}
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")

    def _after(self, path: str, fault: Fault | None, response: Response) -> Response:
        if self.delay_each:
            time.sleep(self.delay_each)
        pid = self.kill_on.pop(path, None)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        if fault == "timeout":
            time.sleep(self.timeout_delay)
        return response


@dataclass
class FakeStripe(_Faulty):
    """Customers, PaymentIntents, refunds and transfers, with Stripe's idempotency-key replay."""

    server: HTTPServer | None = None
    requests: list[Recorded] = field(default_factory=list)
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    refund_status: str = "succeeded"
    balance: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2  # small pages, so every listing is followed across pages
    balance_pages: int = 0
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    _by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    _params_by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def install(self) -> FakeStripe:
        assert self.server is not None
        for path, kind in (
            ("/v1/customers", "customer"),
            ("/v1/payment_intents", "payment_intent"),
            ("/v1/refunds", "refund"),
            ("/v1/transfers", "transfer"),
        ):
            self.server.expect_request(path, method="POST").respond_with_handler(self._handler(kind))
        self.server.expect_request("/v1/transfers", method="GET").respond_with_handler(self._list_transfers)
        self.server.expect_request(
            re.compile(r"^/v1/(payment_intents|refunds|transfers|balance_transactions)/[^/]+$"), method="GET"
        ).respond_with_handler(self._retrieve)
        self.server.expect_request("/v1/balance_transactions", method="GET").respond_with_handler(self._list_balance)
        self.server.expect_request("/v1/webhook_endpoints", method="GET").respond_with_handler(self._list_endpoints)
        self.server.expect_request("/v1/webhook_endpoints", method="POST").respond_with_handler(self._create_endpoint)
        self.server.expect_request(re.compile(r"^/v1/webhook_endpoints/[^/]+$"), method="POST").respond_with_handler(
            self._update_endpoint
        )
        return self

    # -- The balance: a balance transaction for each movement, as Stripe lists them ----------------
    def fee_for(self, cents: int) -> int:
        """Stripe's standard US card fee: 2.9% + 30¢, rounded half up."""
        return int((Decimal(cents) * Decimal("0.029")).quantize(Decimal(1), rounding=ROUND_HALF_UP)) + 30

    def add_balance(self, type_: str, amount: int, source: str | dict[str, Any], fee: int = 0) -> dict[str, Any]:
        with self.lock:
            return self._add_balance(type_, amount, source, fee)

    def _add_balance(self, type_: str, amount: int, source: str | dict[str, Any], fee: int = 0) -> dict[str, Any]:
        n = next(self._ids)
        txn = {
            "id": f"txn_{n}",
            "object": "balance_transaction",
            "type": type_,
            "reporting_category": type_,
            "amount": amount,
            "fee": fee,
            "net": amount - fee,
            "currency": "usd",
            "status": "available",
            "created": int(time.time()),
            "source": source,
        }
        self.balance.append(txn)
        return txn

    def charge(self, intent: str, cents: int) -> dict[str, Any]:
        """A card payment for `intent` lands in the balance, Stripe keeping its fee."""
        source = {"id": f"ch_{intent}", "object": "charge", "payment_intent": intent, "amount": cents}
        return self.add_balance("charge", cents, source, self.fee_for(cents))

    def held(self) -> int:
        """What Stripe holds: the net of every balance transaction."""
        return sum(int(t["net"]) for t in self.balance)

    def kept(self) -> int:
        """What Stripe kept in fees."""
        return sum(int(t["fee"]) for t in self.balance)

    def _list_balance(self, request: Request) -> Response:
        with self.lock:
            fault = self._fault_for(request.path)
            if isinstance(fault, int):
                return self._error(fault)
            low = int(request.args.get("created[gte]", 0))
            high = int(request.args.get("created[lt]", 2**62))
            after = request.args.get("starting_after")
            expand = any(v == "data.source" for k, v in request.args.items(multi=True) if k.startswith("expand"))
            rows = [t for t in reversed(self.balance) if low <= t["created"] < high]  # newest first
            if after:
                ids = [t["id"] for t in rows]
                rows = rows[ids.index(after) + 1 :] if after in ids else []
            page = rows[: min(int(request.args.get("limit", 10)), self.page_size)]
            self.balance_pages += 1
            data = [
                {**t, "source": t["source"] if expand or not isinstance(t["source"], dict) else t["source"]["id"]}
                for t in page
            ]
        body = {"object": "list", "data": data, "has_more": len(rows) > len(page), "url": "/v1/balance_transactions"}
        return Response(json.dumps(body), content_type="application/json")

    def _retrieve(self, request: Request) -> Response:
        """One object by id, as Stripe answers it; 404 resource_missing for one it never made."""
        _, _, collection, object_id = request.path.split("/", 3)
        with self.lock:
            if collection == "balance_transactions":
                found = next((t for t in self.balance if t["id"] == object_id), None)
            else:
                kind = {"payment_intents": "payment_intent", "refunds": "refund", "transfers": "transfer"}[collection]
                found = next((o for o in self.objects.get(kind, []) if o["id"] == object_id), None)
        if found is None:
            missing = {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": f"No such object: '{object_id}'",
                    "param": "id",
                }
            }
            return Response(json.dumps(missing), status=404, content_type="application/json")
        return Response(json.dumps(found), content_type="application/json")

    # -- Webhook endpoints --------------------------------------------------------------------------
    def _list_endpoints(self, request: Request) -> Response:
        body = {"object": "list", "data": self.endpoints, "has_more": False, "url": "/v1/webhook_endpoints"}
        return Response(json.dumps(body), content_type="application/json")

    def _create_endpoint(self, request: Request) -> Response:
        with self.lock:
            endpoint = {
                "id": f"we_{next(self._ids)}",
                "object": "webhook_endpoint",
                "url": request.form["url"],
                "enabled_events": _form_list(request.form, "enabled_events"),
                "status": "enabled",
                "secret": "whsec_created_by_the_stand_in",
            }
            self.endpoints.append(endpoint)
        return Response(json.dumps(endpoint), content_type="application/json")

    def _update_endpoint(self, request: Request) -> Response:
        with self.lock:
            endpoint = next(e for e in self.endpoints if e["id"] == request.path.rsplit("/", 1)[1])
            endpoint["enabled_events"] = _form_list(request.form, "enabled_events")
        return Response(json.dumps(endpoint), content_type="application/json")

    def created(self, path: str) -> list[Recorded]:
        """Requests that created an object (replays of a known idempotency key excluded)."""
        kind = {
            "/v1/customers": "customer",
            "/v1/payment_intents": "payment_intent",
            "/v1/refunds": "refund",
            "/v1/transfers": "transfer",
        }[path]
        ids = {o["id"] for o in self.objects.get(kind, [])}
        seen: set[str] = set()
        result = []
        for rec in self.requests:
            key = rec.headers.get("Idempotency-Key", "")
            if rec.path == path and key not in seen and rec.json in ids:
                seen.add(key)
                result.append(rec)
        return result

    def _handler(self, kind: str) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            key = request.headers.get("Idempotency-Key", "")
            with self.lock:
                fault = self._fault_for(request.path)
                if isinstance(fault, int):
                    return self._error(fault)
                if key and key in self._by_key:
                    obj = self._by_key[key]
                    if self._params_by_key.get(key) != dict(request.form):
                        # Stripe compares a reused key's parameters with the first request's.
                        error = {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used with the same parameters.",
                        }
                        return Response(json.dumps({"error": error}), status=400, content_type="application/json")
                else:
                    obj = self._object(kind, request.form)
                    self.objects.setdefault(kind, []).append(obj)
                    if kind == "refund" and obj["status"] in ("pending", "succeeded"):
                        self._add_balance("refund", -obj["amount"], obj["id"])
                    if kind == "transfer":
                        self._add_balance("transfer", -obj["amount"], obj["id"])
                    if key:
                        self._by_key[key] = obj
                        self._params_by_key[key] = dict(request.form)
                self.requests.append(Recorded(request.path, dict(request.form), dict(request.headers), obj["id"]))
            return self._after(
                request.path, fault, Response(json.dumps(obj), status=200, content_type="application/json")
            )

        return handle

    def _list_transfers(self, request: Request) -> Response:
        group = request.args.get("transfer_group")
        data = [t for t in self.objects.get("transfer", []) if group is None or t.get("transfer_group") == group]
        body = {"object": "list", "data": data, "has_more": False, "url": "/v1/transfers"}
        return Response(json.dumps(body), content_type="application/json")

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
            "currency": form.get("currency"),
            "destination": form.get("destination"),
            "transfer_group": form.get("transfer_group"),
            "metadata": metadata,
        }


def _form_list(form: Any, name: str) -> list[str]:
    """A list the SDK form-encodes as name[0]=…&name[1]=…, in order."""
    keys = sorted((k for k in form if k.startswith(f"{name}[")), key=lambda k: int(k[len(name) + 1 : -1] or 0))
    return [form[k] for k in keys]


@dataclass
class FakeSendGrid(_Faulty):
    """POST /v3/mail/send, answering 202 with an X-Message-Id."""

    server: HTTPServer | None = None
    mails: list[Recorded] = field(default_factory=list)
    attempts: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def install(self) -> FakeSendGrid:
        assert self.server is not None
        self.server.expect_request("/v3/mail/send", method="POST").respond_with_handler(self._send)
        return self

    def fail_next(self, status: Fault, headers: dict[str, str] | None = None) -> None:  # type: ignore[override]
        self.faults.setdefault("/v3/mail/send", []).append(status)
        if headers and isinstance(status, int):
            self._headers[status] = headers

    _headers: dict[int, dict[str, str]] = field(default_factory=dict)

    def _send(self, request: Request) -> Response:
        with self.lock:
            self.attempts += 1
            fault = self._fault_for(request.path)
            if isinstance(fault, int):
                response = self._error(fault)
                for name, value in self._headers.get(fault, {}).items():
                    response.headers[name] = value
                return response
            self.mails.append(Recorded(request.path, {}, dict(request.headers), json=request.get_json()))
            message_id = f"sg-{next(self._ids)}"
        return self._after(request.path, fault, Response("", status=202, headers={"X-Message-Id": message_id}))

    def to(self, mail: Recorded) -> list[str]:
        return [t["email"] for p in mail.json["personalizations"] for t in p["to"]]

    def text(self, mail: Recorded) -> str:
        return "\n".join(c["value"] for c in mail.json.get("content", []))


@dataclass
class FakeX(_Faulty):
    """X's OAuth 2.0 token endpoints, v2 media upload and v2 posts."""

    server: HTTPServer | None = None
    token_requests: list[dict[str, str]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    uploads: list[Recorded] = field(default_factory=list)
    tweets: list[Recorded] = field(default_factory=list)
    issued: int = 0
    token_status: int = 200

    def install(self) -> FakeX:
        assert self.server is not None
        self.server.expect_request("/2/oauth2/token", method="POST").respond_with_handler(self._token)
        self.server.expect_request("/2/oauth2/revoke", method="POST").respond_with_handler(self._revoke)
        self.server.expect_request("/2/media/upload", method="POST").respond_with_handler(self._upload)
        self.server.expect_request("/2/tweets", method="POST").respond_with_handler(self._tweet)
        return self

    def _token(self, request: Request) -> Response:
        self.token_requests.append({**dict(request.form), "authorization": request.headers.get("Authorization", "")})
        if self.token_status != 200:
            return Response('{"error": "invalid_grant"}', status=self.token_status, content_type="application/json")
        self.issued += 1
        body = {
            "token_type": "bearer",
            "access_token": f"access-{self.issued}",
            "refresh_token": f"refresh-{self.issued}",
            "expires_in": 7200,
            "scope": "tweet.write media.write offline.access",
        }
        return Response(json.dumps(body), content_type="application/json")

    def _revoke(self, request: Request) -> Response:
        self.revoked.append(request.form["token"])
        return Response('{"revoked": true}', content_type="application/json")

    def _upload(self, request: Request) -> Response:
        with self.lock:
            fault = self._fault_for(request.path)
            if isinstance(fault, int):
                return self._error(fault)
            files = {name: f.read() for name, f in request.files.items()}
            self.uploads.append(Recorded(request.path, dict(request.form), dict(request.headers), files=files))
            media_id = f"m{len(self.uploads)}"
        return self._after(
            request.path, fault, Response(json.dumps({"data": {"id": media_id}}), content_type="application/json")
        )

    def _tweet(self, request: Request) -> Response:
        with self.lock:
            fault = self._fault_for(request.path)
            if isinstance(fault, int):
                return self._error(fault)
            self.tweets.append(Recorded(request.path, {}, dict(request.headers), json=request.get_json()))
            tweet_id = f"{1000 + len(self.tweets)}"
        body = {"data": {"id": tweet_id, "text": request.get_json()["text"]}}
        return self._after(request.path, fault, Response(json.dumps(body), status=201, content_type="application/json"))


def stripe_signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header, made the way Stripe makes it."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def payment_intent(intent: str, user: UUID, cents: int) -> dict[str, Any]:
    """A holding-cell deposit's PaymentIntent, as payment_intent.succeeded carries it."""
    return {
        "id": intent,
        "object": "payment_intent",
        "amount": cents,
        "amount_received": cents,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"user_id": str(user), "purpose": "holding_cell_deposit"},
    }


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
class FakeGemini(_Faulty):
    """generateContent for any model. Answers come from `script` in order (a verdict dict, raw text for
    malformed output, an HTTP status, or "timeout"), then `default`."""

    server: HTTPServer | None = None
    calls: list[Recorded] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)
    default: Any = None
    delay: float = 0.0

    def install(self) -> FakeGemini:
        import re

        assert self.server is not None
        self.server.expect_request(
            re.compile(r"^/v1(beta)?/models/[^/]+:generateContent$"), method="POST"
        ).respond_with_handler(self._generate)
        return self

    def _generate(self, request: Request) -> Response:
        with self.lock:
            self.calls.append(Recorded(request.path, {}, dict(request.headers), json=request.get_json()))
            answer = self.script.pop(0) if self.script else self.default
        if self.delay:
            time.sleep(self.delay)
        if answer == "timeout":
            time.sleep(self.timeout_delay)
            answer = self.default
        if isinstance(answer, int):
            return Response(
                json.dumps({"error": {"code": answer, "message": "injected", "status": "UNAVAILABLE"}}),
                status=answer,
                content_type="application/json",
            )
        text = answer if isinstance(answer, str) else json.dumps(answer)
        body = {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
            "usageMetadata": usage_metadata(request.get_json(), text),
            "modelVersion": "fake",
        }
        return Response(json.dumps(body), content_type="application/json")


# Google's published token rule for Gemini 3 models (ai.google.dev, "Media resolution"): an image
# costs a fixed budget by media resolution, whatever its pixels; a PDF costs it per page; images
# default to high and PDFs to medium when the request leaves the resolution unspecified.
MEDIA_TOKENS = {"MEDIA_RESOLUTION_LOW": 280, "MEDIA_RESOLUTION_MEDIUM": 560, "MEDIA_RESOLUTION_HIGH": 1120}


def usage_metadata(request: dict[str, Any], answer: str) -> dict[str, Any]:
    """usageMetadata as generateContent answers it, counted by that rule (text at ~4 characters a token)."""
    import base64
    import math

    resolution = (request.get("generationConfig") or {}).get("mediaResolution")
    texts = [p.get("text", "") for c in request.get("contents", []) for p in c.get("parts", [])]
    texts += [p.get("text", "") for p in (request.get("systemInstruction") or {}).get("parts", [])]
    image_tokens = document_tokens = 0
    for content in request.get("contents", []):
        for part in content.get("parts", []):
            inline = part.get("inlineData") or part.get("inline_data")
            if not inline:
                continue
            mime = inline.get("mimeType") or inline.get("mime_type") or ""
            if mime == "application/pdf":
                data = base64.urlsafe_b64decode(inline["data"] + "==")
                pages = max(1, len(re.findall(rb"/Type\s*/Page[^s]", data)))
                document_tokens += pages * MEDIA_TOKENS.get(resolution or "", MEDIA_TOKENS["MEDIA_RESOLUTION_MEDIUM"])
            else:
                image_tokens += MEDIA_TOKENS.get(resolution or "", MEDIA_TOKENS["MEDIA_RESOLUTION_HIGH"])
    text_tokens = sum(math.ceil(len(t) / 4) for t in texts)
    prompt = text_tokens + image_tokens + document_tokens
    answer_tokens = math.ceil(len(answer) / 4)
    details = [{"modality": "TEXT", "tokenCount": text_tokens}]
    if image_tokens:
        details.append({"modality": "IMAGE", "tokenCount": image_tokens})
    if document_tokens:
        details.append({"modality": "DOCUMENT", "tokenCount": document_tokens})
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": answer_tokens,
        "totalTokenCount": prompt + answer_tokens,
        "promptTokensDetails": details,
    }


@dataclass
class FakeStorage:
    """Supabase Storage's object download: GET /storage/v1/object/<bucket>/<path>."""

    server: HTTPServer
    objects: dict[str, bytes] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def install(self) -> FakeStorage:
        import re

        self.server.expect_request(re.compile(r"^/storage/v1/object/list/[^/]+$"), method="POST").respond_with_handler(
            self._list
        )
        self.server.expect_request(re.compile(r"^/storage/v1/object/[^/]+$"), method="DELETE").respond_with_handler(
            self._remove
        )
        self.server.expect_request(re.compile(r"^/storage/v1/object/.+"), method="GET").respond_with_handler(self._get)
        self.server.expect_request(re.compile(r"^/storage/v1/object/[^/]+/.+"), method="POST").respond_with_handler(
            self._upload
        )
        return self

    def _upload(self, request: Request) -> Response:
        """Storage's upload: 409 for an existing object unless x-upsert, as the server answers (HTTP 400)."""
        self.requests.append(Recorded(request.path, {}, dict(request.headers)))
        key = request.path[len("/storage/v1/object/") :]
        upsert = request.headers.get("x-upsert", "false").lower() == "true"
        if key in self.objects and not upsert:
            body = {"statusCode": "409", "error": "Duplicate", "message": "The resource already exists"}
            return Response(json.dumps(body), status=400, content_type="application/json")
        uploaded = next(iter(request.files.values()), None)
        self.objects[key] = uploaded.read() if uploaded is not None else request.get_data()
        return Response(json.dumps({"Id": str(uuid.uuid4()), "Key": key}), content_type="application/json")

    def _list(self, request: Request) -> Response:
        """Storage's list: one level under the prefix, folders (no id) and files, by name, a page at a time."""
        self.requests.append(Recorded(request.path, {}, dict(request.headers), json=request.get_json()))
        bucket = request.path.rsplit("/", 1)[1]
        body = request.get_json()
        prefix = f"{bucket}/{body.get('prefix', '').strip('/')}/".replace("//", "/")
        entries: dict[str, dict[str, Any]] = {}
        for key, data in self.objects.items():
            if not key.startswith(prefix):
                continue
            head, slash, _ = key[len(prefix) :].partition("/")
            if slash:
                entries.setdefault(head, {"name": head, "id": None, "metadata": None})
            else:
                entries[head] = {
                    "name": head,
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
                    "metadata": {"size": len(data)},
                }
        ordered = [entries[name] for name in sorted(entries)]
        offset, limit = int(body.get("offset", 0)), int(body.get("limit", 100))
        return Response(json.dumps(ordered[offset : offset + limit]), content_type="application/json")

    def _remove(self, request: Request) -> Response:
        self.requests.append(Recorded(request.path, {}, dict(request.headers), json=request.get_json()))
        bucket = request.path.rsplit("/", 1)[1]
        removed = []
        for path in request.get_json().get("prefixes", []):
            if self.objects.pop(f"{bucket}/{path}", None) is not None:
                removed.append({"name": path, "bucket_id": bucket})
        return Response(json.dumps(removed), content_type="application/json")

    def _get(self, request: Request) -> Response:
        self.requests.append(Recorded(request.path, {}, dict(request.headers)))
        key = request.path[len("/storage/v1/object/") :]
        if key not in self.objects:
            return Response(
                json.dumps({"statusCode": "404", "error": "not_found", "message": "Object not found"}),
                status=400,
                content_type="application/json",
            )
        return Response(self.objects[key], content_type="application/octet-stream")
