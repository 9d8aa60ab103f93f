"""JSON log lines in the shape Cloud Logging reads: severity, message, trace."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

_TRACE_KEY = "logging.googleapis.com/trace"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; extra fields come from `extra={"fields": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            fields = dict(fields)  # every handler formats the same record: never change it
            trace = fields.pop("trace", None)
            if trace:
                project = os.environ.get("GOOGLE_CLOUD_PROJECT")
                entry[_TRACE_KEY] = f"projects/{project}/traces/{trace}" if project else trace
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type and where it happened, never its message: messages
            # can carry personal data or provider payloads.
            exc_type, _, tb = record.exc_info
            import traceback

            frames = traceback.extract_tb(tb)
            entry["exception"] = {
                "type": exc_type.__name__,
                "stack": [f"{f.filename}:{f.lineno} in {f.name}" for f in frames],
            }
        return json.dumps(entry, default=str)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


_configured = False


def configure(level: str = "INFO") -> None:
    """Route the root logger to stdout as JSON lines, once per process."""
    global _configured
    if _configured:
        return
    handler = _StdoutHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    quiet_noisy_loggers()
    _configured = True


# These SDKs log request headers, URLs or bodies (tokens, keys, witness links, proof content) below
# WARNING; google_genai's retry messages carry the whole request body at INFO.
NOISY_LOGGERS = (
    "tweepy",
    "python_http_client",
    "stripe",
    "httpx",
    "httpcore",
    "urllib3",
    "google",
    "google_genai",
    "tenacity",
    "supabase",
    "storage3",
    "postgrest",
    "hpack",
)


def quiet_noisy_loggers() -> None:
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
