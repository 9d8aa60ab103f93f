"""Stand-ins for Stripe transfers and SendGrid mail that answer after a fixed delay, in their own
process, counting what they are asked to create so duplicates show.

Like Stripe, they speak HTTP/1.1 with keep-alive: a client reuses its connection rather than
opening one (and, on this side, starting a thread) per request.

Counted: every transfer request, the transfers created (one per new idempotency key), and the
transfers created per consequence (from `metadata[consequence_id]`). A duplicate is a second
transfer created for the same consequence, whatever its key.

With a LIMIT (requests per second), transfers past it are refused as Stripe refuses them: 429 with
its `rate_limit` error body, counted as `limited` (a token bucket holding one second's worth).

    python -m bench.standins PORT DELAY_SECONDS [LIMIT]
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

STATE: dict[str, Any] = {"requests": 0, "transfers": {}, "per_consequence": Counter(), "mails": 0, "limited": 0}
BUCKET: dict[str, float] = {"limit": 0.0, "tokens": 0.0, "at": 0.0}
LOCK = threading.Lock()
IDS = itertools.count(1)


def stats() -> dict[str, int]:
    with LOCK:
        per_consequence: Counter[str] = STATE["per_consequence"]
        return {
            "requests": STATE["requests"],
            "transfers": len(STATE["transfers"]),
            "consequences": len(per_consequence),
            "duplicates": sum(count - 1 for count in per_consequence.values()),
            "mails": STATE["mails"],
            "limited": STATE["limited"],
        }


def _over_limit() -> bool:
    """Take a token from the bucket (refilled at LIMIT per second); True when none was left."""
    if not BUCKET["limit"]:
        return False
    with LOCK:
        now = time.monotonic()
        BUCKET["tokens"] = min(BUCKET["limit"], BUCKET["tokens"] + (now - BUCKET["at"]) * BUCKET["limit"])
        BUCKET["at"] = now
        if BUCKET["tokens"] < 1:
            STATE["limited"] += 1
            return True
        BUCKET["tokens"] -= 1
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Stripe and SendGrid answer
    disable_nagle_algorithm = True  # headers and body go out in two writes; never wait on a delayed ACK
    delay = 0.0

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the benchmark reads /stats, not a log
        return

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/stats":
            self._answer(200, json.dumps(stats()).encode())
        elif self.path.startswith("/v1/transfers"):
            # The engine's look for a transfer an earlier attempt may have made: by group, then metadata.
            query = parse_qs(self.path.partition("?")[2])
            group = query.get("transfer_group", [""])[0]
            with LOCK:
                found = [t for t in STATE["transfers"].values() if t.get("transfer_group") == group]
            self._answer(200, json.dumps({"object": "list", "data": found, "has_more": False}).encode())
        else:
            self._answer(404, b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.delay)
        if self.path == "/v1/transfers" and _over_limit():
            error = {
                "error": {
                    "type": "invalid_request_error",
                    "code": "rate_limit",
                    "message": "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
                }
            }
            self._answer(429, json.dumps(error).encode())
        elif self.path == "/v1/transfers":
            form = {name: values[0] for name, values in parse_qs(body.decode()).items()}
            key = self.headers.get("Idempotency-Key", "")
            with LOCK:
                STATE["requests"] += 1
                if key not in STATE["transfers"]:
                    STATE["per_consequence"][form.get("metadata[consequence_id]", "")] += 1
                    STATE["transfers"][key] = {
                        "id": f"tr_{next(IDS)}",
                        "object": "transfer",
                        "amount": int(form["amount"]),
                        "transfer_group": form.get("transfer_group"),
                        "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
                    }
                transfer = STATE["transfers"][key]
            self._answer(200, json.dumps(transfer).encode())
        elif self.path == "/v3/mail/send":
            with LOCK:
                STATE["mails"] += 1
            self._answer(202, b"", {"X-Message-Id": "m"})
        else:
            self._answer(404, b"{}")


if __name__ == "__main__":
    Handler.delay = float(sys.argv[2])
    BUCKET["limit"] = BUCKET["tokens"] = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    BUCKET["at"] = time.monotonic()
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
