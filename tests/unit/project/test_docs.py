"""The docs stay true to the tree: the paths they name exist, every reference to a docs page and
heading (from code, tests, configs and docs) lands on one, and the README stays a map."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

SKIPPED = {".venv", ".venv-ma", ".git", "build", "dist", "out", "__pycache__", ".pytest_cache", ".mypy_cache"}
# Files named in the docs that are not in the tree: written at run time, or another project's.
NOT_IN_THE_TREE = {
    "model.source.json",  # written by `models prepare` beside each model file
    "model_analyzer.yaml",  # written by `triton-vision model-analyzer`
    "src/python/examples/image_client.py",  # triton-inference-server/client's example
}
TEXT_SUFFIXES = {".py", ".pbtxt", ".toml", ".yaml", ".yml", ".md", ".cfg", ".txt", ".sh"}
TEXT_NAMES = {"Makefile", "Dockerfile", ".importlinter", "run", ".pre-commit-config.yaml"}
README_MAX_LINES = 300


def tree_files() -> list[Path]:
    """The project's files, without environments, caches and outputs (not walked at all)."""
    files = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED and not name.endswith(".egg-info")]
        files += [Path(folder) / name for name in names]
    return files


def user_docs() -> list[Path]:
    """The README, the docs pages, the examples' and docker's READMEs, CONTRIBUTING and CHANGELOG."""
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", ROOT / "docker" / "README.md"]
    return pages + sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "examples").rglob("*.md"))


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(page: Path) -> list[str]:
    """The heading lines of ``page`` outside fenced code blocks, without their ``#``s."""
    found, fenced = [], False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            found.append(match.group(1))
    return found


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in headings(page):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def docs_references() -> Iterator[tuple[str, Path, str, str]]:
    """(where, page, anchor, how) for every reference to a docs page in the tree's text files:
    docs/<page>.md, docs/<page>.md#<anchor> and docs/<page>.md section <N> anywhere, and relative
    Markdown links ](<page>.md#<anchor>) in Markdown files."""
    for path in tree_files():
        if path.suffix not in TEXT_SUFFIXES and path.name not in TEXT_NAMES:
            continue
        where = str(path.relative_to(ROOT))
        text = path.read_text(errors="replace")
        for name, anchor in re.findall(r"(?<![\w/.-])docs/([\w/.-]+?\.md)(?:#([\w-]+))?", text):
            yield where, ROOT / "docs" / name, anchor, "anchor"
        for name, number in re.findall(r"(?<![\w/.-])docs/([\w/.-]+?\.md),? section (\d+)", text):
            yield where, ROOT / "docs" / name, number, "section"
        if path.suffix == ".md":
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"[a-z]+:", target):
                    continue
                name, _, anchor = target.partition("#")
                yield where, (path.parent / name).resolve() if name else path, anchor, "link"


def test_every_file_path_the_docs_name_exists():
    """A renamed or moved file must be renamed in the docs too."""
    tracked = [str(path.relative_to(ROOT)) for path in tree_files()]
    missing = []
    for page in user_docs():
        text = page.read_text()
        named = set(re.findall(r"`([\w./-]+\.(?:py|toml|pbtxt|yaml|md|cfg|txt|json))`", text))
        for name in sorted(named - NOT_IN_THE_TREE):
            if "NAME" in name or name.startswith(("out/", "~")):
                continue
            if not any(path == name or path.endswith("/" + name) for path in tracked):
                missing.append(f"{page.relative_to(ROOT)}: {name}")
    assert missing == []


def test_every_docs_reference_points_to_a_page_and_heading():
    """Code comments, generated configs, tests and docs point to docs/<page>.md#<anchor>: the page
    and its heading must be there (a renamed heading breaks them)."""
    references = list(docs_references())
    assert any(how == "anchor" and anchor for _, _, anchor, how in references), "the pattern should find anchors"
    broken = []
    for where, page, anchor, how in references:
        if not page.exists():
            broken.append(f"{where}: {page.relative_to(ROOT) if page.is_relative_to(ROOT) else page} does not exist")
        elif how == "section" and not any(h.startswith(f"{anchor}. ") for h in headings(page)):
            broken.append(f"{where}: {page.relative_to(ROOT)} has no section {anchor}")
        elif how != "section" and anchor and page.suffix == ".md" and anchor not in anchors(page):
            broken.append(f"{where}: {page.relative_to(ROOT)} has no heading #{anchor}")
    assert broken == []


def test_nothing_points_to_a_readme_section_that_is_not_there():
    """The README is a map and the manual lives in docs/: a comment that points to a "README,
    <section>" must name a heading the README has (docs pages are pointed to by anchor)."""
    readme_headings = set(headings(ROOT / "README.md"))
    stale = []
    for path in tree_files():
        if path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            for name in re.findall(r"README, \*?([A-Z][\w ]*[\w])", path.read_text(errors="replace")):
                if not any(h == name or h.startswith(f"{name}:") for h in readme_headings):
                    stale.append(f"{path.relative_to(ROOT)}: README, {name}")
    assert stale == []


def test_the_readme_is_a_map_that_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    pages = sorted(path.name for path in (ROOT / "docs").glob("*.md"))
    assert pages, "docs/ should hold the topic pages"
    assert [page for page in pages if f"](docs/{page})" not in readme] == []


def test_every_docs_page_starts_with_a_title_and_a_summary():
    for page in sorted((ROOT / "docs").glob("*.md")):
        lines = page.read_text().splitlines()
        assert lines[0].startswith("# "), page.name
        assert lines[1] == "" and lines[2] and not lines[2].startswith(("#", "-", "|", "```")), page.name


def test_every_example_folder_has_a_readme_and_is_listed():
    folders = sorted(path for path in (ROOT / "examples").iterdir() if path.is_dir())
    assert folders
    index = (ROOT / "examples" / "README.md").read_text()
    for folder in folders:
        assert (folder / "README.md").is_file(), folder.name
        assert f"]({folder.name}/)" in index, folder.name
