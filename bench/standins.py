"""Stand-ins for Stripe transfers and SendGrid mail that answer after a fixed delay, in their own
process, counting what they are asked to create (by idempotency key) so duplicates show.

    python -m bench.standins PORT DELAY_SECONDS
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from typing import Any

from werkzeug import Request, Response
from werkzeug.serving import make_server

STATE: dict[str, Any] = {"transfers": {}, "creations": 0, "mails": 0}
LOCK = threading.Lock()
IDS = itertools.count(1)


def app(environ: dict[str, Any], start_response: Any) -> Any:
    request = Request(environ)
    delay = float(sys.argv[2])
    if request.path == "/stats":
        with LOCK:
            body = {"transfers": len(STATE["transfers"]), "creations": STATE["creations"], "mails": STATE["mails"]}
        return Response(json.dumps(body), content_type="application/json")(environ, start_response)
    time.sleep(delay)
    if request.path == "/v1/transfers" and request.method == "POST":
        key = request.headers.get("Idempotency-Key", "")
        with LOCK:
            if key not in STATE["transfers"]:
                STATE["creations"] += 1
                STATE["transfers"][key] = {
                    "id": f"tr_{next(IDS)}",
                    "object": "transfer",
                    "amount": int(request.form["amount"]),
                }
            obj = STATE["transfers"][key]
        return Response(json.dumps(obj), content_type="application/json")(environ, start_response)
    if request.path == "/v3/mail/send":
        with LOCK:
            STATE["mails"] += 1
        return Response("", status=202, headers={"X-Message-Id": "m"})(environ, start_response)
    return Response("{}", status=404)(environ, start_response)


if __name__ == "__main__":
    make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True).serve_forever()
