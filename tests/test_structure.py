"""Where things live: runtime apart from tooling, providers own their SDKs, functions stay thin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The SDKs of third parties (and the HTTP clients used to reach them): only shared/providers/ may import them.
SDKS = ("stripe", "sendgrid", "python_http_client", "tweepy", "google.genai", "supabase", "storage3")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _runtime_files() -> list[Path]:
    shared = [p for p in (REPO / "shared").rglob("*.py") if "dev" not in p.relative_to(REPO / "shared").parts[:1]]
    return shared + sorted((REPO / "functions").glob("*/main.py"))


def test_runtime_never_imports_dev_tooling() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(
            m for m in _imports(path) if m == "shared.dev" or m.startswith("shared.dev.")
        )
        for path in _runtime_files()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_import_check_sees_a_lazy_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f() -> None:\n    from shared.dev import seed\n")
    assert "shared.dev.seed" in _imports(sample)


@pytest.mark.parametrize("sdk", SDKS)
def test_only_providers_import_an_sdk(sdk: str) -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in _runtime_files()
        if "providers" not in path.parts and any(m == sdk or m.startswith(f"{sdk}.") for m in _imports(path))
    ]
    assert offenders == []


def test_every_provider_error_is_one_of_the_pair() -> None:
    from shared.account.x_oauth import XRevoked
    from shared.commitments.engine.errors import Permanent, Retryable
    from shared.providers import email, gemini, stripe_api
    from shared.providers.errors import ProviderRefused, ProviderUnavailable

    for retry in (email.EmailRetryable, gemini.GraderUnavailable, Retryable):
        assert issubclass(retry, ProviderUnavailable)
    for refused in (email.EmailRejected, gemini.GraderRefused, stripe_api.CardDeclined, XRevoked, Permanent):
        assert issubclass(refused, ProviderRefused)


def test_function_entry_points_are_thin_and_assert_free() -> None:
    for path in sorted((REPO / "functions").glob("*/main.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert not any(isinstance(node, ast.Assert) for node in ast.walk(tree)), f"{path} uses assert"
        lines = [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert len(lines) <= 60, f"{path} has {len(lines)} lines: logic has leaked into it"


# The rows that travel through several helpers, by the parameter names the helpers give them.
TRAVELLING_ROWS = {
    "shared/proof/grading.py": {"sub": "Submission"},
    **{str(p.relative_to(REPO)): {"row": "Consequence"} for p in (REPO / "shared/commitments/engine").glob("*.py")},
    "shared/notifications/delivery.py": {"row": "Notification"},
    "shared/notifications/voice.py": {"row": "Notification"},
}


@pytest.mark.parametrize("module", sorted(TRAVELLING_ROWS))
def test_rows_that_travel_through_helpers_are_typed(module: str) -> None:
    """A submission through grading, a consequence through the engine and a notification through the
    sender and the renderer are dataclasses, never a dict."""
    tree = ast.parse((REPO / module).read_text(encoding="utf-8"))
    typed = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for arg in node.args.args + node.args.kwonlyargs:
            expected = TRAVELLING_ROWS[module].get(arg.arg)
            if expected is not None and arg.annotation is not None:
                assert ast.unparse(arg.annotation) == expected, f"{module}: {node.name}({arg.arg}: ...)"
                typed += 1
    assert typed or module.endswith("__init__.py") or module.endswith(("errors.py", "row.py")), module


def test_console_script_points_at_dev_cli() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'threativator = "shared.dev.cli:main"' in text


# Imported only on the paths that use them: cold start is part of the product.
HEAVY = ("psycopg", "stripe", "sendgrid", "tweepy", "google.genai", "supabase", "cryptography", "httpx", "jwt")


def _loaded_by_importing(function: str, modules: tuple[str, ...]) -> str:
    """Which of `modules` a fresh process has loaded after importing the function's main.py."""
    import subprocess
    import sys

    probe = (
        "import sys, runpy; runpy.run_path('main.py'); "
        f"print(','.join(sorted(m for m in {modules!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO / "functions" / function,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    return result.stdout.strip()


@pytest.mark.parametrize("function", sorted(p.parent.name for p in (REPO / "functions").glob("*/main.py")))
def test_importing_a_function_loads_no_heavy_module(function: str) -> None:
    assert _loaded_by_importing(function, HEAVY) == ""


# Functions that send nothing at import, and at most on some requests, leave the notification
# request models and delivery (pydantic models for every kind, SendGrid glue) to first use.
NOTIFICATION_MODULES = ("shared.notifications.models", "shared.notifications.delivery")
SENDS_NOTHING_AT_IMPORT = sorted(
    p.parent.name for p in (REPO / "functions").glob("*/main.py") if p.parent.name != "send_notification"
)


@pytest.mark.parametrize("function", SENDS_NOTHING_AT_IMPORT)
def test_importing_a_function_builds_no_notification_models(function: str) -> None:
    assert _loaded_by_importing(function, NOTIFICATION_MODULES) == ""


# -----------------------------------------------------------------------------
# Domains you can see: imports only go down
# -----------------------------------------------------------------------------
# The infrastructure every domain reaches, then the domains in the order they may import each other.
# Peers (money and proof) never import each other; nothing imports a domain above it.
INFRASTRUCTURE = (
    "config", "auth", "db", "http", "errors", "log", "links", "webhooks", "charities",
    "providers", "notifications", "console",
)  # fmt: skip
LAYERS = {**dict.fromkeys(INFRASTRUCTURE, 0), "money": 1, "proof": 1, "account": 2, "commitments": 3}


def _runtime_imports(path: Path) -> set[str]:
    """The shared modules a file imports, lazy ones included, type-only ones (TYPE_CHECKING) not."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for inner in ast.iter_child_nodes(node):
            visit(inner)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m.startswith("shared.") and not m.startswith("shared.dev")}


def _part(module: str) -> str:
    """Which part of shared/ a dotted name belongs to: a domain, or an infrastructure module."""
    return module.split(".")[1]


def import_problems(root: Path) -> list[str]:
    problems: list[str] = []
    edges: dict[str, set[str]] = {}
    for path in sorted((root / "shared").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[1] in ("dev", "__init__"):
            continue
        here = parts[1]
        if here not in LAYERS:
            problems.append(f"{'/'.join(parts)}: {here} is in no layer")
            continue
        for module in sorted(_runtime_imports(path)):
            there = _part(module)
            if there == here or there not in LAYERS:
                continue
            edges.setdefault(here, set()).add(there)
            if LAYERS[there] > LAYERS[here] or (LAYERS[there] == LAYERS[here] and LAYERS[here] > 0):
                problems.append(f"{'/'.join(parts)} imports {module}: {here} may not import {there}")
            if any(name.startswith("_") for name in module.split(".")[2:]) and LAYERS[here] > 0:
                problems.append(f"{'/'.join(parts)} imports {module}: another part's private name")

    # And no cycle between the parts, whatever the layers say.
    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ()))

    problems += [f"cycle: {a} and {b} import each other" for a in edges for b in edges[a] if reaches(b, a, {b})]
    return problems


def test_imports_only_go_down_between_domains() -> None:
    assert import_problems(REPO) == []


def test_the_domain_check_sees_an_upward_import_a_private_one_and_a_cycle(tmp_path: Path) -> None:
    for package in ("money", "commitments", "proof"):
        (tmp_path / "shared" / package).mkdir(parents=True)
    (tmp_path / "shared" / "money" / "cell.py").write_text(
        "def f() -> None:\n    from shared.commitments import deadlines\n"
    )
    (tmp_path / "shared" / "commitments" / "deadlines.py").write_text("from shared.money.cell import _secret\n")
    (tmp_path / "shared" / "proof" / "grading.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from shared.commitments import deadlines\n"
    )
    found = import_problems(tmp_path)
    assert any("money may not import commitments" in p for p in found)
    assert any("private name" in p for p in found)
    assert any(p.startswith("cycle:") for p in found)
    assert not any("shared/proof/grading" in p for p in found)  # a type-only import is no dependency
