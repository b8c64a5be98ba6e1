"""Removing what a server left behind (old logs, shared-memory regions): files that may already be gone."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def remove_files(paths: Iterable[Path]) -> list[Path]:
    """Unlink each path; those that could not be removed (gone, not ours) are skipped. The removed."""
    removed = []
    for path in paths:
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed
