"""``triton-vision export-repo DEST``: copy models into another repository, renamed (:mod:`.export_repo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import triton_vision_contract as contract
from triton_vision_authoring.check_report import print_report, quiet_check
from triton_vision_authoring.export_repo import export_repository
from triton_vision_authoring.init import repository_or_builtin
from triton_vision_authoring.repository_option import DEFAULT_REPOSITORY
from triton_vision_models.repository import ModelRepository


def run(args: argparse.Namespace) -> int:
    """Copy the repository with every model renamed <prefix><name>, then check the copy."""
    with repository_or_builtin(args.model_repository) as source:
        exported = export_repository(source, args.dest, prefix=args.prefix, models=args.models, force=args.force)
    for model in exported:
        print(f"{model.source} -> {args.dest / model.name}")
    report = quiet_check(args.dest, [m.name for m in exported])
    print_report(report, as_json=False)
    copied = ModelRepository.load(args.dest)
    ensembles = [m.name for m in exported if m.name in copied.ensembles]
    if args.prefix and ensembles:
        verb = contract.TASK_COMMANDS.get(copied[ensembles[0]].task or "", "classify")
        print(
            f"clients call the ensembles by their new names ({', '.join(ensembles)}): "
            f"triton-vision {verb} IMAGE --model-prefix {args.prefix}"
        )
    return 0 if report.ok else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Copy models (and what they need) into another repository, renamed <prefix><name>, then check the copy."
    )
    parser.add_argument("dest", type=Path, help="target model repository (created; may be an existing one)")
    parser.add_argument("--prefix", default="", help="prepended to every model name, e.g. tv_")
    parser.add_argument(
        "--models", nargs="+", default=None, help="models to export (default: all); what they need comes along"
    )
    parser.add_argument("--force", action="store_true", help="replace models of the same name in DEST")
    parser.add_argument(
        "--model-repository",
        type=Path,
        default=None,
        help=f"the source repository (default: ./{DEFAULT_REPOSITORY} where it exists, else the built-in one)",
    )
