"""A repository check as the commands show it (``check``, ``export-repo``): run quietly, printed."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path

from triton_vision_authoring.check import Report, check_repository


def print_report(report: Report, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    verdict = "ok" if report.ok else f"{len(report.problems)} problem{'' if len(report.problems) == 1 else 's'}"
    print(f"{report.repository}: {len(report.models)} models checked, {verdict}")


def quiet_check(repository: Path, models: Iterable[str] | None = None) -> Report:
    """check_repository without the deprecation warnings DALI prints while serializing pipelines."""
    with warnings.catch_warnings(record=True):  # recorded, not shown (DALI forces its own filter)
        return check_repository(repository, models)
