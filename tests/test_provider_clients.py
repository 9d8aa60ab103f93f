"""Provider clients are built once per process, whoever asks first and however many at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shared.providers import OncePerProcess, gemini, storage, stripe_api


def sixteen_at_once(ask: Callable[[], Any]) -> list[Any]:
    start = threading.Barrier(16)

    def first() -> Any:
        start.wait()
        return ask()

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda _: first(), range(16)))


def test_sixteen_first_callers_share_one_client_built_once() -> None:
    built: list[object] = []

    def build() -> object:
        time.sleep(0.05)  # a client takes a while to build: every caller arrives before the first is done
        built.append(object())
        return built[-1]

    once = OncePerProcess(build)
    got = sixteen_at_once(once)
    assert len(built) == 1 and all(client is built[0] for client in got)
    once.cache_clear()
    assert once() is not built[0] and len(built) == 2


@pytest.mark.parametrize("name", ["gemini", "stripe", "storage"])
def test_each_provider_client_is_one_per_process_under_sixteen_first_callers(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-test-key")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_clients")
    monkeypatch.setenv("SUPABASE_SECRET_KEYS", "sb_secret_clients0123456789")
    make: Any = {"gemini": gemini.client, "stripe": stripe_api.client, "storage": storage.client}[name]
    make.cache_clear()
    got = sixteen_at_once(make)
    assert len({id(client) for client in got}) == 1
    make.cache_clear()
