"""Clients for third-party APIs, each created lazily and pointed at its base-URL setting."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class OncePerProcess(Generic[T]):
    """A client built on first use, once per process (once per loaded Settings), under a lock.

    `functools.cache` lets concurrent first callers each build one; the losers are collected, and a
    client that closes its connection pool when collected (google-genai's does) closes it under the
    winner's feet. Here every caller gets the one client. It is built from the settings in force, so
    it is built again only when the settings are reloaded (which production never does; tests do).
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._built: tuple[object, T] | None = None
        functools.update_wrapper(self, build)

    def __call__(self) -> T:
        from shared.config import get_settings

        settings = get_settings()
        built = self._built
        if built is None or built[0] is not settings:
            with self._lock:
                if self._built is None or self._built[0] is not settings:
                    self._built = (settings, self._build())
                built = self._built
        return built[1]

    def cache_clear(self) -> None:
        """Forget the client."""
        with self._lock:
            self._built = None


def once_per_process(build: Callable[[], T]) -> OncePerProcess[T]:
    return OncePerProcess(build)
