"""The operator console: one page of plain HTML and JavaScript, served by operator_console.

No build step and no third-party script: the page, its script and its style are files beside this
module, served by the same function (`?asset=`). Operators sign in through Supabase Auth's REST API
(email and password, or a magic link); outside production the page also takes a development token
(`make dev` prints one). Everything it shows is data, never markup: proofs and reasons are set as
text, images only as `data:image/...` URLs, under a Content-Security-Policy that allows no inline
script, no other origin's script and no plugin, and connects only to Supabase and operator_review.
"""

from __future__ import annotations

import json
from importlib import resources
from urllib.parse import urlsplit

from shared.config import Settings

ASSETS = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def config(settings: Settings) -> dict[str, object]:
    """What the page needs to know, embedded as JSON data (not script)."""
    return {
        "supabase_url": settings.supabase_url.rstrip("/"),
        "publishable_key": settings.supabase_publishable_key,
        "review_url": settings.operator_review_url,
        "sla_hours": settings.operator_sla_hours,
        "development_token": settings.environment != "production",
    }


def page(settings: Settings) -> str:
    # "<" is escaped so that the data can never close its element, whatever a setting holds.
    data = json.dumps(config(settings)).replace("<", "\\u003c")
    return _read("console.html").replace("{{config}}", data)


def asset(name: str) -> tuple[str, str] | None:
    """(text, content type) of one of the page's files, or None."""
    if name not in ASSETS:
        return None
    return _read(name), ASSETS[name]


def headers(settings: Settings) -> dict[str, str]:
    """The page's security headers: a strict CSP, no framing, no sniffing, no referrer."""
    connect = ["'self'", _origin(settings.supabase_url)]
    if settings.operator_review_url:
        connect.append(_origin(settings.operator_review_url))
    policy = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src data:",
            f"connect-src {' '.join(dict.fromkeys(connect))}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
