"""``triton-vision``: query the ensembles; with the server extra, serve them too.

The client commands (classify, detect, segment, probe, models list) need only the ``client``
extra. Other packages add commands through entry-point groups: each entry point of
``triton_vision.commands`` takes the sub-command parser (``triton_vision_cli.server_commands.register``
adds ``serve``, ``demo``, ``perf``, ...), each of ``triton_vision.model_actions`` takes the
``models`` command's actions (``triton_vision_cli.server_commands.register_model_actions`` adds
``prepare`` and ``status``). This module imports nothing from them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

import triton_vision_contract as contract

from . import records
from .client import ClientError, VisionClient
from .discovery import EnsembleInfo
from .errors import UsageError
from .folderjob import (
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_USAGE,
    Task,
    add_connection,
    add_job_arguments,
    check_protocol,
    positive_float,
    positive_int,
    run_job,
)
from .tasks import CLASSIFY, DETECT, SEGMENT

COMMAND_PLUGINS = "triton_vision.commands"  # entry-point group of packages that add commands
MODEL_ACTION_PLUGINS = "triton_vision.model_actions"  # entry-point group of packages that add `models` actions
DISTRIBUTION = "triton-vision"

__all__ = ["add_connection", "build_parser", "main"]


def _checked_number(text: str, kind: type, low: float, high: float | None, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def _top_k(text: str) -> int:
    return _checked_number(text, int, contract.MIN_TOP_K, None, f"a whole number >= {contract.MIN_TOP_K}")


def _fraction(text: str) -> float:
    return _checked_number(text, float, 0.0, 1.0, "a number in [0, 1]")


# -- the folder jobs (folderjob.py: inputs, formats, resume and exit codes; tasks.py: the three) ---
def job_command(task: Task):
    def command(args: argparse.Namespace) -> int:
        return run_job(args, task)

    return command


# -- models list: what a server serves ------------------------------------------------------------
def ensemble_table(ensembles: Sequence[EnsembleInfo]) -> list[str]:
    """One line per ensemble: name, task, images per request, state, stand-in steps."""
    header = ("ENSEMBLE", "TASK", "BATCH", "STATE", "STAND-IN MODELS")
    rows = [
        (
            info.name,
            info.task or "-",
            "-" if info.max_batch_size is None else str(info.max_batch_size),
            info.state,
            ", ".join(info.stand_in) or "-",
        )
        for info in ensembles
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].ljust(widths[3])]
        return "  ".join([*cells, row[4]]).rstrip()

    return [line(header), *(line(row) for row in rows)]


def cmd_models_list(args: argparse.Namespace) -> int:
    try:
        check_protocol(args.protocol)
        with VisionClient(args.url, args.protocol, timeout_s=args.timeout, model_prefix=args.model_prefix) as client:
            found = client.ensembles()
            url, protocol = client.url, client.protocol
    except ValueError as exc:  # a malformed --url, a bad protocol
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SERVER
    if args.json:
        print(json.dumps({"url": url, "protocol": protocol, "ensembles": [info.as_dict() for info in found]}))
    elif found:
        print("\n".join(ensemble_table(found)))
    else:
        print(f"the server at {url} has no ensembles" + (f" named {args.model_prefix}*" if args.model_prefix else ""))
    return EXIT_OK


def add_models_parser(sub) -> None:
    """``models``: its ``list`` action here; plugins add theirs (``prepare``, ``status``)."""
    p = sub.add_parser(
        "models",
        help="list a server's ensembles; with the server extra, prepare the model files",
        description="list: a server's ensembles (client extra only). With the server extra, prepare: put the "
        "repository's ONNX files in place; status: where each came from.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="a server's ensembles: task, images per request, state, stand-in models",
        description="Every ensemble of the server's repository (loaded or not): its task, its images per "
        "request (max_batch_size), whether it is ready, and which of its models are stand-ins with random weights.",
    )
    listing.add_argument("--json", action="store_true", help="one JSON object on stdout")
    listing.add_argument("--timeout", type=positive_float, default=30.0, help="seconds per request (default 30)")
    add_connection(listing)
    listing.set_defaults(func=cmd_models_list)
    for plugin in entry_points(group=MODEL_ACTION_PLUGINS):
        plugin.load()(actions)


def _version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triton-vision", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"triton-vision {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "classify",
        help="top-k labels for image files, folders and globs",
        description="Top-k labels for each image from a classification ensemble; many requests in flight, "
        "results as they complete.",
        epilog=EXIT_CODES_HELP,
    )
    add_job_arguments(p, task=CLASSIFY.task, default_concurrency=CLASSIFY.default_concurrency)
    p.add_argument(
        "--top-k",
        type=_top_k,
        default=None,
        help=f"labels per image, >= {contract.MIN_TOP_K}, at most the model's classes "
        f"(server default {contract.DEFAULT_TOP_K})",
    )
    add_connection(p)
    p.set_defaults(func=job_command(CLASSIFY))

    p = sub.add_parser(
        "segment",
        help="class masks for image files and folders: indexed PNG mask and overlay",
        description="Class masks for each image from a segmentation ensemble, written under --out mirroring "
        "the input tree; the overlay carries a legend.",
        epilog=EXIT_CODES_HELP,
    )
    add_job_arguments(p, task=SEGMENT.task, default_concurrency=SEGMENT.default_concurrency)
    p.add_argument("--out", type=Path, default=Path("out"), help="where <stem>_mask.png and <stem>_overlay.png go")
    p.add_argument("--no-overlay", action="store_true", help="write the mask only")
    add_connection(p)
    p.set_defaults(func=job_command(SEGMENT))

    p = sub.add_parser(
        "detect",
        help="detections for image files and folders, recorded and drawn",
        description="Detections for each image from a detection ensemble; annotated copies under --out "
        "mirroring the input tree.",
        epilog=EXIT_CODES_HELP,
    )
    add_job_arguments(p, task=DETECT.task, default_concurrency=DETECT.default_concurrency)
    p.add_argument(
        "--threshold",
        type=_fraction,
        default=None,
        help=f"minimum score in [0, 1] (server default {contract.DEFAULT_SCORE_THRESHOLD})",
    )
    p.add_argument(
        "--max-detections",
        type=positive_int,
        default=None,
        help=f"per image, >= 1 (server default {contract.DEFAULT_MAX_DETECTIONS})",
    )
    p.add_argument("--out", type=Path, default=Path("out"), help="where annotated images go (default out/)")
    p.add_argument(
        "--all-detections",
        action="store_true",
        help=f"text output: list every detection (default: the first {records.TEXT_DETECTIONS}, then how many "
        "more); jsonl and csv always have them all",
    )
    add_connection(p)
    p.set_defaults(func=job_command(DETECT))

    from .probe import DEFAULT_TIMEOUT_S, cmd_probe

    p = sub.add_parser(
        "probe", help="send a tiny image through every ensemble; exit 0 if all answer, 1 naming those that do not"
    )
    p.add_argument(
        "--ensemble",
        action="append",
        default=None,
        metavar="NAME",
        help="only this one, of any task (repeatable; default: every ensemble of the server)",
    )
    p.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT_S, help="seconds per request (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_connection(p)
    p.set_defaults(func=cmd_probe)

    add_models_parser(sub)
    for plugin in entry_points(group=COMMAND_PLUGINS):
        plugin.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Inputs may follow options (`classify photos/ --top-k 3 more/`): argparse leaves them over.
    if extra and hasattr(args, "images") and all(item == "-" or not item.startswith("-") for item in extra):
        args.images = [*args.images, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
