"""``triton-vision add-model SPEC.toml|MODEL.onnx [--name NAME] [--model-repository REPO] [--force] [--verify DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from triton_vision_authoring.repository_option import DEFAULT_REPOSITORY, add_repository

DEFAULT_VERIFY_LIMIT = 50  # photos per class
DESCRIPTION = (
    "Make an ONNX classifier, detector or segmenter an encoded-bytes ensemble: write NAME, NAME_preprocess "
    "(DALI), the ONNX model and NAME_postprocess into the repository from an ensemble spec (TOML; every "
    "key: docs/add-model.md), or from a model file that describes itself (an Ultralytics detect, segment or "
    "pose export: the spec is written from its metadata, printed and kept as NAME/spec.toml). With --verify "
    "DIR (a classifier's photos, one folder per class), first run the model in-process under the spec's "
    "preprocessing and its usual alternatives (colour order, scaling, resize), print their accuracies, and "
    "write nothing when one is clearly better."
)


def run(args: argparse.Namespace) -> int:
    from triton_vision_authoring.add_model.add_model import add_model

    pipeline = _pipeline_text(args.spec)
    if pipeline is not None:
        return _add_pipeline(args, pipeline)
    if args.verify_only and args.verify is None:
        print("error: --verify-only needs --verify DIR", file=sys.stderr)
        return 2
    if args.verify is not None:
        from triton_vision_authoring.add_model.verify import VerifyError, verify_spec
        from triton_vision_authoring.add_model.verify_report import report_lines

        try:
            report = verify_spec(args.spec, args.verify, limit=args.verify_limit)
        except VerifyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for line in report_lines(report):
            print(line, file=sys.stderr if line.startswith("WARNING") else sys.stdout)
        if report.warnings:
            if not args.verify_only:
                print(
                    f"not written: fix [preprocess] in {args.spec.name}, or run add-model without --verify "
                    "to write the ensemble as the spec says",
                    file=sys.stderr,
                )
            return 1
        if args.verify_only:
            return 0
    if args.spec.suffix.lower() == ".onnx":
        if args.verify is not None:
            print("error: --verify takes a spec (add-model prints the one it writes for MODEL.onnx)", file=sys.stderr)
            return 2
        from triton_vision_authoring.add_model.described import add_described_model

        result, described = add_described_model(args.spec, args.model_repository, name=args.name, force=args.force)
        print(
            f"{described.spec_path}: written from the metadata of {args.spec.name} (edit it and run add-model on it):"
        )
        print("  " + described.text.rstrip("\n").replace("\n", "\n  "))
    elif args.name is not None:
        print("error: --name is for MODEL.onnx (a spec names its ensemble: name = ...)", file=sys.stderr)
        return 2
    else:
        result = add_model(args.spec, args.model_repository, force=args.force)
    spec = result.spec
    print(f"{spec.name}: {spec.task} ensemble written to {args.model_repository}/")
    for name in result.written:
        print(f"  {args.model_repository / name}/")
    for name in result.shared:
        print(f"  {args.model_repository / name}/ (shared by every ensemble; the repository had none)")
    images = "image" if result.max_batch_size == 1 else "images"
    print(f"  model: {result.batching}; {result.max_batch_size} {images} per request")
    if result.source is not None:
        print(f"  {spec.model_name}/1/model.onnx: {result.source.from_origin()}")
    elif spec.model is None and not (args.model_repository / spec.model_name / "1" / "model.onnx").is_file():
        print(f"  {spec.model_name}/1/model.onnx: not yet; {_prepare_hint(spec.model_name, args.model_repository)}")
    print(f"clients: triton-vision {_verb(spec.task)} IMAGE --ensemble {spec.name}")
    return 0


def _pipeline_text(path: Path) -> str | None:
    """The spec's text when it is a pipeline's (``task = "pipeline"``), else None."""
    from triton_vision_authoring.add_model.pipeline_spec import spec_task
    from triton_vision_contract import PIPELINE

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # add_model names the problem
    return text if spec_task(text, path) == PIPELINE else None


def _add_pipeline(args: argparse.Namespace, text: str) -> int:
    from triton_vision_authoring.add_model.pipeline import add_pipeline

    if args.verify is not None:
        print("error: --verify checks a model's preprocessing; a pipeline has none of its own", file=sys.stderr)
        return 2
    result = add_pipeline(args.spec, text, args.model_repository, force=args.force)
    spec = result.spec
    print(
        f"{spec.name}: pipeline written to {args.model_repository}/ ({spec.detect.ensemble}, then {spec.then.ensemble})"
    )
    for name in result.written:
        print(f"  {args.model_repository / name}/")
    print(f"clients: triton-vision pipeline IMAGE --ensemble {spec.name}")
    return 0


def _prepare_hint(model: str, repository: Path) -> str:
    """How the file of a spec that declares its tensors gets made."""
    from triton_vision_authoring.models import CATALOGUE

    where = "" if repository == DEFAULT_REPOSITORY else f" --model-repository {repository}"
    if model in CATALOGUE:
        return f"`triton-vision models prepare --model {model}{where}` makes it"
    return "put the ONNX file there (its tensors as the spec's [tensors] declare)"


def _verb(task: str) -> str:
    import triton_vision_contract as contract

    return contract.TASK_COMMANDS[task]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = DESCRIPTION
    p.add_argument(
        "spec",
        type=Path,
        help="the model spec (TOML; its paths are relative to it), or a model file that describes itself (an "
        "Ultralytics ONNX export: the spec is written from its metadata)",
    )
    p.add_argument(
        "--name", default=None, help="MODEL.onnx: the ensemble's name (default: the file's name without .onnx)"
    )
    add_repository(p)
    p.add_argument("--force", action="store_true", help="replace the ensemble's models if the repository has them")
    p.add_argument(
        "--verify",
        type=Path,
        default=None,
        metavar="DIR",
        help="photos in one folder per class (named by label-file lines): first compare the spec's colour order, "
        "scaling and resize with their usual alternatives in-process, and write nothing if one is clearly better",
    )
    p.add_argument(
        "--verify-limit",
        type=int,
        default=DEFAULT_VERIFY_LIMIT,
        metavar="N",
        help=f"photos per class to verify with (default {DEFAULT_VERIFY_LIMIT})",
    )
    p.add_argument(
        "--verify-only",
        action="store_true",
        help="with --verify: report, write nothing (exit 1 when an alternative is clearly better)",
    )
