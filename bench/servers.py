"""Starting the things a benchmark measures: a throwaway database, and functions under gunicorn."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from bench.common import ROOT
from shared.dev import localdb, migrate

WORKERS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def database() -> Iterator[str]:
    data_dir = Path(tempfile.mkdtemp(prefix="threativator-bench-")) / "pgdata"
    url = localdb.start(data_dir, database="bench", fast_unsafe=True)
    migrate.migrate(url, local=True)
    try:
        yield url
    finally:
        localdb.stop(data_dir)


class Served(NamedTuple):
    url: str
    pid: int  # gunicorn's master; its workers are its children


@contextmanager
def gunicorn(
    target: str, source: Path, env: dict[str, str], workers: int = WORKERS, threads: int = 4
) -> Iterator[Served]:
    port = free_port()
    app = f"functions_framework:create_app(target={target!r}, source={str(source)!r})"
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            app,
        ],
        cwd=ROOT,
        env={**os.environ, **env, "LOG_LEVEL": "ERROR"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(urllib.request.Request(url, method="OPTIONS"), timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        yield Served(url, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
