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


def test_code_configs_and_deployment_files_point_to_docs_pages_not_readme_sections():
    """Topics live in docs/ pages: code points to ``docs/PAGE.md#anchor``, never to a README section."""
    pattern = re.compile("README" + r", [A-Z]")  # split, so that this file does not match itself
    pointing: dict[str, str] = {}
    for top in ("backends", "benchmarks", "client", "docker", "model_repository", "tests", "tools", "Makefile"):
        for path in [ROOT / top] if (ROOT / top).is_file() else (ROOT / top).rglob("*"):
            if path.is_file() and (
                path.suffix in {".py", ".pbtxt", ".yaml", ".toml", ".md"} or path.name[:4] in {"Make", "Dock"}
            ):
                found = pattern.search(path.read_text(errors="replace"))
                if found:
                    pointing[str(path.relative_to(ROOT))] = found.group()
    assert pointing == {}
