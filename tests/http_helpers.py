"""Serving a function through functions-framework's own app, as Cloud Functions does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from functions_framework import create_app

SAMPLE = Path(__file__).resolve().parent / "sample_function" / "main.py"
FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"


def client(target: str, source: Path | None = None) -> Any:
    """A Flask test client for one function; `source` defaults to functions/<target>/main.py."""
    path = source or FUNCTIONS / target / "main.py"
    return create_app(target=target, source=str(path)).test_client()


def sample(target: str) -> Any:
    return client(target, SAMPLE)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
