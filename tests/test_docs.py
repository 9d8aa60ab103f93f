"""The docs, by reader: every setting and every function is documented, links between docs work, the
front door stays short, and the docs speak of the product, never of our issue tracker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCS)


def test_every_setting_is_documented() -> None:
    text = _text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in text]
    assert missing == []


def test_every_function_has_its_section_in_the_api_reference() -> None:
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    functions = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))
    assert [name for name in functions if not re.search(rf"^### {name}\b", api, re.MULTILINE)] == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_links_between_docs_resolve(path: Path) -> None:
    broken = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        if not (path.parent / target.split("#", 1)[0]).exists():
            broken.append(target)
    assert broken == []


def test_the_link_check_finds_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("see [nowhere](nowhere.md) and [here](page.md#top)")
    assert [t for t in LINK.findall(page.read_text()) if not (tmp_path / t.split("#")[0]).exists()] == ["nowhere.md"]


def test_the_front_door_stays_short_and_the_docs_speak_of_the_product() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200
    mentions = [
        f"{path.name}: {m.group(0)}" for path in DOCS for m in re.finditer(r"\bissue[- ]\d+", path.read_text(), re.I)
    ]
    assert mentions == []
