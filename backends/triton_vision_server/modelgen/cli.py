"""``triton-vision add-model SPEC.toml [--model-repository REPO] [--force] [--verify DIR]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_REPOSITORY = Path("model_repository")
DESCRIPTION = (
    "Make an ONNX classifier, detector or segmenter an encoded-bytes ensemble: write NAME, NAME_preprocess "
    "(DALI), the ONNX model and NAME_postprocess into the repository from a model spec (TOML; see the "
    "README's 'Your own model'). With --verify DIR (one folder of photos per class name), first run the "
    "model in-process under the spec's preprocessing and its common alternatives and warn when one is "
    "clearly better."
)


def cmd_add_model(args: argparse.Namespace) -> int:
    from .addmodel import add_model

    if args.verify is not None:
        from .verify import report_lines, verify_spec

        report = verify_spec(args.spec, args.verify, limit=args.verify_limit)
        for line in report_lines(report):
            print(line, file=sys.stderr if line.startswith("WARNING") else sys.stdout)
        if args.verify_only:
            return 0 if not report.warnings else 1
    result = add_model(args.spec, args.model_repository, force=args.force)
    spec = result.spec
    print(f"{spec.name}: {spec.task} ensemble written to {args.model_repository}/")
    for name in result.written:
        print(f"  {args.model_repository / name}/")
    for name in result.shared:
        print(f"  {args.model_repository / name}/ (shared by every ensemble; the repository had none)")
    print(f"  model: {result.batching}; {result.max_batch_size} image(s) per request")
    if result.source is not None:
        print(f"  {spec.model_name}/1/model.onnx: from {result.source.origin} (sha256 {result.source.sha256[:12]}...)")
    print(f"clients: triton-vision {_verb(spec.task)} IMAGE --ensemble {spec.name}")
    return 0


def _verb(task: str) -> str:
    return {"classification": "classify", "detection": "detect", "segmentation": "segment"}[task]


def register(
    sub: Any, wrap: Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]
) -> None:
    p = sub.add_parser(
        "add-model", help="make an ONNX model an encoded-bytes ensemble from a spec", description=DESCRIPTION
    )
    p.add_argument("spec", type=Path, help="the model spec (TOML); its paths are relative to it")
    p.add_argument("--model-repository", type=Path, default=DEFAULT_REPOSITORY, help="default: model_repository")
    p.add_argument("--force", action="store_true", help="replace the ensemble's models if the repository has them")
    p.add_argument(
        "--verify",
        type=Path,
        default=None,
        metavar="DIR",
        help="photos in one folder per class name (labels-file names): check the spec's colour order and scaling",
    )
    p.add_argument("--verify-limit", type=int, default=50, help="photos per class to verify with (default 50)")
    p.add_argument("--verify-only", action="store_true", help="with --verify: report, write nothing")
    p.set_defaults(func=wrap(cmd_add_model))
