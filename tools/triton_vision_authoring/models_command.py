"""``triton-vision models prepare|status``: a repository's ONNX model files (:mod:`.models`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from triton_vision_authoring import models as model_files
from triton_vision_authoring.errors import RepositoryUnusableError
from triton_vision_authoring.repository_option import add_repository, existing_repository
from triton_vision_contract.errors import UsageError
from triton_vision_models.repository import ModelRepository

ACTIONS = (
    (
        "prepare",
        "produce the ONNX files the repository serves",
        "Put each ONNX model's file in place (--from a local file, else a pinned download, else a "
        "clearly marked stand-in with random weights).",
    ),
    ("status", "show where each ONNX model's file came from", "A table of every ONNX model's file."),
)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n else "-"


def models_table(rows: Iterable[model_files.PreparedModel]) -> list[str]:
    """``models status``: a line per ONNX model (model, kind, sha256, size, origin)."""
    table = [("model", "kind", "sha256", "size", "origin")]
    for row in rows:
        source = row.source
        origin = "run `triton-vision models prepare`" if not row.prepared else (source.origin if source else "-")
        if source is not None and source.arrived_sha256:
            origin += f" (that file's sha256 {source.arrived_sha256[:12]}: rewritten to serve it)"
        sha = source.sha256[:12] if source else "-"
        table.append((row.name, row.kind, sha, _size(row.size), origin))
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line[:4], widths, strict=True)) + "  " + line[4]
        for line in table
    ]


def status(repository: ModelRepository, *, as_json: bool, models: list[str] | None = None) -> int:
    rows = model_files.prepared_models(repository)
    if models:
        known = [row.name for row in rows]
        unknown = [name for name in models if name not in known]
        if unknown:
            raise RepositoryUnusableError(
                f"model repository {repository.path} has no ONNX model '{unknown[0]}' "
                f"(its ONNX models: {', '.join(known) or 'none'})"
            )
        rows = [row for row in rows if row.name in models]
    if as_json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    if not rows:
        print(f"{repository.path} has no ONNX models", file=sys.stderr)
        return 0
    for line in models_table(rows):
        print(line)
    for row in rows:
        if row.source is not None and row.source.is_stand_in:
            print(f"WARNING: {row.name} is a {row.describe()}", file=sys.stderr)
    return 0


def prepare(repository: ModelRepository, args: argparse.Namespace) -> int:
    catalogue = model_files.CATALOGUE
    names = args.model or [key for key, entry in catalogue.items() if key == entry.name and entry.name in repository]
    if not names:
        onnx_models = repository.of_kind("onnxruntime")
        raise RepositoryUnusableError(
            f"model repository {repository.path} holds none of the models `models prepare` makes "
            f"({', '.join(dict.fromkeys(e.name for e in catalogue.values()))})"
            + (f"; its ONNX models: {', '.join(onnx_models)}" if onnx_models else "")
        )
    if args.from_path is not None and len(names) != 1:
        raise UsageError("--from needs exactly one --model")
    for name in names:
        entry = catalogue.get(name)
        if entry is None:
            raise UsageError(f"unknown model '{name}' (known: {', '.join(catalogue)})")
        if entry.name not in repository:
            raise RepositoryUnusableError(
                f"model repository {repository.path} has no model '{entry.name}' "
                f"(looked for {repository.path / entry.name / 'config.pbtxt'}); is --model-repository right?"
            )
        was_there = (model_files.version_dir(repository.path, entry.name) / model_files.MODEL_FILENAME).is_file()
        source = model_files.prepare(
            repository.path,
            entry,
            from_path=args.from_path,
            stand_in=args.stand_in,
            force=args.force,
            report=lambda message: print(message, file=sys.stderr),
        )
        line = f"{entry.name}: {model_files.describe(source)}"
        print(
            ("WARNING: " + line) if source.is_stand_in else line, file=sys.stderr if source.is_stand_in else sys.stdout
        )
        if entry.choice and (args.force or not was_there):  # said when this model was put in place
            print(f"note: {entry.choice}")
    return 0


def run(args: argparse.Namespace) -> int:
    repository = existing_repository(args.model_repository)
    if args.action == "status":
        return status(repository, as_json=args.json, models=args.model)
    return prepare(repository, args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "The ONNX model files of a model repository (they are never committed). prepare: put each in "
        "place; status: where each came from."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    # Each action takes only the options it uses: an option it would ignore is refused (exit 2).
    parsers = {action: actions.add_parser(action, help=h, description=d) for action, h, d in ACTIONS}
    prepare_parser, status_parser = parsers["prepare"], parsers["status"]
    prepare_parser.add_argument("--model", action="append", help="model directory name (repeatable; default: all)")
    prepare_parser.add_argument(
        "--from", dest="from_path", type=Path, default=None, help="import a local .onnx file (or a .pth)"
    )
    prepare_parser.add_argument(
        "--stand-in", action="store_true", help="random-weight stand-in with the same tensor contract"
    )
    prepare_parser.add_argument("--force", action="store_true", help="replace a model that is already prepared")
    status_parser.add_argument(
        "--model", action="append", help="only this ONNX model's row (repeatable; default: every ONNX model)"
    )
    status_parser.add_argument("--json", action="store_true", help="one JSON list on stdout")
    for p in parsers.values():
        add_repository(p)
