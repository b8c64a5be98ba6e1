"""docs/architecture.md points at files that exist (a renamed module must be renamed there too)."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def test_every_file_the_architecture_page_names_exists():
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`([\w./-]+\.(?:py|toml|pbtxt|yaml|md|cfg))`", text))
    named |= set(re.findall(r"\]\(\.\./([\w./-]+)\)", text))
    skipped = {".venv", ".venv-ma", ".git", "build", "out"}
    tracked = [
        str(path.relative_to(ROOT))
        for top in ROOT.iterdir()
        if top.name not in skipped
        for path in ([top] if top.is_file() else top.rglob("*"))
        if path.is_file()
    ]
    missing = [
        name
        for name in sorted(named)
        if "NAME" not in name and not any(path == name or path.endswith("/" + name) for path in tracked)
    ]
    assert missing == []


def test_every_readme_section_the_code_and_docs_point_to_exists():
    """Comments and docs say "(README, Reliability III)": that section must be there (it once was not)."""
    headings = {line.lstrip("#").strip() for line in (ROOT / "README.md").read_text().splitlines() if line[:1] == "#"}
    pointed: dict[str, str] = {}
    for top in ("backends", "client", "docker", "docs", "model_repository", "tests"):
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".pbtxt", ".md", ".yaml", ".toml"}:
                for name in re.findall(r"README, (Reliability[ IV]*\b)", path.read_text(errors="replace")):
                    pointed.setdefault(name.strip(), str(path.relative_to(ROOT)))
    assert pointed, "the pattern should find the references"
    missing = {
        name: path for name, path in pointed.items() if not any(h.startswith(f"{name}:") or h == name for h in headings)
    }
    assert missing == {}
