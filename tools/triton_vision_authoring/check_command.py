"""``triton-vision check [DIR]``: validate a model repository offline (:mod:`.check`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from triton_vision_authoring.check_report import print_report, quiet_check
from triton_vision_authoring.repository_option import DEFAULT_REPOSITORY, existing_repository

DESCRIPTION = (
    "Validate a model repository offline: configs, ensemble wiring, DALI pipelines, ONNX files, labels. "
    "A repository without an ensemble is a problem. Exit 0: no problem; 1: problems; 2: no such repository."
)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the repository has no problems, 1 otherwise."""
    existing_repository(args.repository, "its path: triton-vision check DIR")
    report = quiet_check(args.repository)
    print_report(report, as_json=args.json)
    return 0 if report.ok else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("repository", nargs="?", type=Path, default=DEFAULT_REPOSITORY, help="(default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
