"""openapi.json is generated from the functions and committed; they must agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shared.dev import openapi


def test_committed_openapi_matches_the_code(repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shared.dev.cli", "openapi", "--check"], cwd=repo_root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_openapi_describes_every_function_and_error(repo_root: Path) -> None:
    spec = json.loads((repo_root / "openapi.json").read_text())
    assert spec["openapi"] == "3.1.0"
    names = sorted(p.parent.name for p in (repo_root / "functions").glob("*/main.py"))
    assert sorted(path.strip("/") for path in spec["paths"]) == names
    for path, item in spec["paths"].items():
        if path == "/operator_console":  # the console's page: GET, no body
            assert list(item) == ["get"] and "text/html" in item["get"]["responses"]["200"]["content"]
            continue
        operation = item["post"]
        assert "requestBody" in operation, path
        for code in ("400", "401", "403", "405", "413", "415", "503"):
            assert operation["responses"][code]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }
    grade = spec["paths"]["/grade_submission"]["post"]
    assert grade["security"] == [{}, {"bearer": []}]
    assert spec["paths"]["/stripe_webhook"]["post"]["security"] == []
    upload = spec["paths"]["/upload_kompromat"]["post"]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
    notification = spec["paths"]["/send_notification"]["post"]["requestBody"]["content"]["application/json"]
    # One model per notice type, or Supabase's Database Webhook for a notifications insert (issue 16).
    kinds = {ref["$ref"].rsplit("/", 1)[1] for ref in notification["schema"]["oneOf"]}
    assert {"StakeReleased", "GoalChanged", "KompromatExpired", "DatabaseWebhook"} <= kinds and len(kinds) == 10


def test_openapi_build_is_deterministic() -> None:
    assert openapi.render(openapi.build()) == openapi.render(openapi.build())
