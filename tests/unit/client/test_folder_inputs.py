"""Input expansion for folder jobs: files, directories, globs and '-' (no server)."""

from __future__ import annotations

import io
import os
from pathlib import Path, PurePath

import pytest

from triton_vision_client.inputs import ExpansionStats, count_inputs, expand_inputs


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """photos/a.jpg, b.PNG, notes.txt, .hidden.jpg, sub/c.jpeg, sub/deeper/d.png, sub/e.gif."""
    root = tmp_path / "photos"
    for name in ("a.jpg", "b.PNG", "notes.txt", ".hidden.jpg", "sub/c.jpeg", "sub/deeper/d.png", "sub/e.gif"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return root


def names(sources) -> list[str]:
    return [s.name for s in sources]


def test_a_directory_gives_its_image_files_sorted_and_skips_others_and_hidden(tree):
    stats = ExpansionStats()
    found = list(expand_inputs([str(tree)], stats=stats))
    assert names(found) == [str(tree / "a.jpg"), str(tree / "b.PNG")]
    assert stats.skipped_not_images == 1 and stats.skipped_hidden == 1


def test_recursive_walks_the_tree_and_keeps_each_file_place_relative_to_the_directory(tree):
    found = list(expand_inputs([str(tree)], recursive=True))
    relative = sorted(str(s.relative) for s in found)
    assert relative == sorted(["a.jpg", "b.PNG", "sub/c.jpeg", "sub/deeper/d.png", "sub/e.gif"])
    assert all(s.path == tree / s.relative for s in found)


def test_an_explicit_file_is_taken_whatever_its_name_and_a_missing_one_is_still_yielded(tree):
    found = list(expand_inputs([str(tree / "notes.txt"), "no/such.jpg"]))
    assert names(found) == [str(tree / "notes.txt"), "no/such.jpg"]
    assert found[0].relative == PurePath("notes.txt") and found[1].problem is None


def test_a_glob_expands_to_its_files_relative_to_its_fixed_prefix(tree):
    found = list(expand_inputs([str(tree / "**" / "*.png")]))
    assert sorted(str(s.relative) for s in found) == ["sub/deeper/d.png"]  # b.PNG: glob is case-sensitive
    found = list(expand_inputs([str(tree / "sub" / "*.*")]))
    assert sorted(str(s.relative) for s in found) == ["c.jpeg", "e.gif"]


def test_a_glob_matching_nothing_yields_one_source_that_says_so(tree):
    (found,) = expand_inputs([str(tree / "*.webp")])
    assert found.problem == "no file matches this pattern"


def test_dash_reads_paths_from_stdin_one_per_line(tree):
    stdin = io.StringIO(f"{tree / 'a.jpg'}\n\n{tree / 'sub'}\n")
    assert names(expand_inputs(["-"], stdin=stdin)) == [
        str(tree / "a.jpg"),
        str(tree / "sub/c.jpeg"),
        str(tree / "sub/e.gif"),
    ]


def test_expansion_is_lazy_one_source_at_a_time(tmp_path):
    for index in range(50):
        (tmp_path / f"{index:03d}.jpg").write_bytes(b"x")
    iterator = expand_inputs([str(tmp_path)])
    assert next(iterator).name.endswith("000.jpg")


def test_count_matches_expansion_and_is_unknown_for_stdin(tree):
    assert count_inputs([str(tree)], recursive=True) == 5
    assert count_inputs(["-"]) is None


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_a_symlink_loop_does_not_make_the_walk_endless(tree):
    (tree / "sub" / "loop").symlink_to(tree, target_is_directory=True)
    assert len(list(expand_inputs([str(tree)], recursive=True))) == 5


def test_a_directory_without_recursive_counts_the_subfolders_it_skips(tree):
    stats = ExpansionStats()
    list(expand_inputs([str(tree)], stats=stats))
    assert stats.skipped_subfolders == 1  # sub/ (its own subfolder is not looked at)
    deep = ExpansionStats()
    list(expand_inputs([str(tree)], recursive=True, stats=deep))
    assert deep.skipped_subfolders == 0
