"""The client's commands: classify, detect, segment, pipeline, embed, similar, probe, ensembles (the ``client``
extra only).

:data:`COMMANDS` maps each name to its :class:`Command`, ``add_arguments(parser)`` and
``run(args) -> int``; the ``triton-vision`` command table (:mod:`triton_vision_cli.main`) names
this module for them, builds the parser and reports errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import triton_vision_contract as contract

from . import records
from .client import ClientError, VisionClient
from .discovery import EnsembleInfo, prefix_advice
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
from .probe import DEFAULT_TIMEOUT_S, cmd_probe
from .tasks import CLASSIFY, DETECT, EMBED, INSTANCES, KEYPOINTS, PIPELINE, SEGMENT

__all__ = ["COMMANDS", "Command"]


class Command(NamedTuple):
    """One command: what the command table calls to build its parser and to run it."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


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


# -- ensembles: what a server serves ------------------------------------------------------------
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


def run_ensembles(args: argparse.Namespace) -> int:
    try:
        check_protocol(args.protocol)
        with VisionClient(args.url, args.protocol, timeout_s=args.timeout, model_prefix=args.model_prefix) as client:
            found = client.ensembles()
            url, protocol = client.url, client.protocol
            elsewhere = {} if found else client.other_prefixes()
    except ValueError as exc:  # a malformed --url, a bad protocol
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SERVER
    if args.json:
        listing = {"url": url, "protocol": protocol, "ensembles": [info.as_dict() for info in found]}
        print(json.dumps({**listing, "other_prefixes": elsewhere} if elsewhere else listing))
    elif found:
        print("\n".join(ensemble_table(found)))
    else:
        advice = prefix_advice(elsewhere)
        print(
            f"the server at {url} has no ensembles"
            + (f" named {args.model_prefix}*" if args.model_prefix else "")
            + (f"; {advice}" if advice else "")
        )
    return EXIT_OK


def add_ensembles_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Every ensemble of the server's repository (loaded or not): its task, its images per request "
        "(max_batch_size), whether it is ready, and which of its models are stand-ins with random weights."
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--timeout", type=positive_float, default=30.0, help="seconds per request (default 30)")
    add_connection(parser)


# -- the folder jobs' and probe's arguments ---------------------------------------------------------
def add_classify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Top-k labels for each image from a classification ensemble; many requests in flight, results as they complete."
    )
    parser.epilog = EXIT_CODES_HELP
    add_job_arguments(parser, task=CLASSIFY.task, default_concurrency=CLASSIFY.default_concurrency)
    parser.add_argument(
        "--top-k",
        type=_top_k,
        default=None,
        help=f"labels per image, >= {contract.MIN_TOP_K}, at most the model's classes "
        f"(server default {contract.DEFAULT_TOP_K})",
    )
    add_connection(parser)


def add_segment_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Class masks for each image from a segmentation ensemble, written under --out mirroring the input "
        "tree; the overlay carries a legend."
    )
    parser.epilog = EXIT_CODES_HELP
    add_job_arguments(parser, task=SEGMENT.task, default_concurrency=SEGMENT.default_concurrency)
    parser.add_argument("--out", type=Path, default=Path("out"), help="where <stem>_mask.png and <stem>_overlay.png go")
    parser.add_argument("--no-overlay", action="store_true", help="write the mask only")
    add_connection(parser)


def add_embed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "An embedding for each image from an embedding ensemble: a summary per image, <stem>.npy (FP32 [D]) "
        "under --out mirroring the input tree, and with --format jsonl every vector in the records."
    )
    parser.epilog = EXIT_CODES_HELP
    add_job_arguments(parser, task=EMBED.task, default_concurrency=EMBED.default_concurrency)
    parser.add_argument("--out", type=Path, default=Path("out"), help="where <stem>.npy goes (default out/)")
    add_connection(parser)


def add_similar_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "The embeddings most similar (cosine) to each QUERY among those `embed` wrote: a folder of .npy files "
        "(--out) or a JSON Lines file (--format jsonl --output). Exact search (NumPy); a server only to embed "
        "an image QUERY (--ensemble)."
    )
    parser.add_argument(
        "queries",
        nargs="+",
        metavar="QUERY",
        help="an .npy file, a name in the index (an image path of the JSON Lines records, an .npy file's path "
        "within the folder; itself left out of its answers), or with --ensemble an image file",
    )
    parser.add_argument(
        "--ensemble", default=None, metavar="NAME", help="the embedding ensemble that embeds an image QUERY"
    )
    parser.add_argument("--in", dest="index", type=Path, required=True, metavar="EMBEDDINGS", help="folder or .jsonl")
    parser.add_argument("-k", type=positive_int, default=5, help="neighbours per query (default 5)")
    parser.add_argument("--json", action="store_true", help="one JSON object per query on stdout")
    add_connection(parser)


def run_similar(args: argparse.Namespace) -> int:
    from .similar import search

    if args.ensemble is None:
        answers = search(args.queries, args.index, args.k)
    else:
        check_protocol(args.protocol)
        with VisionClient(args.url, args.protocol, model_prefix=args.model_prefix) as client:

            def embed(path: Path):
                return client.embed([path.read_bytes()], ensemble=args.ensemble)[0].vector

            answers = search(args.queries, args.index, args.k, embed)
    for answer in answers:
        if args.json:
            print(json.dumps(answer, ensure_ascii=False))
            continue
        print(f"{answer['query']}:")
        for found in answer["neighbours"]:
            print(f"  {found['cosine']:7.4f}  {found['name']}")
    return EXIT_OK


def add_instances_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Instances for each image from an instance-segmentation ensemble: detections with each one's pixels and "
        "outline polygons (jsonl, csv), annotated copies (masks coloured per instance) under --out."
    )
    add_detection_arguments(parser, INSTANCES)


def add_keypoints_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Keypoints for each image from a keypoints ensemble: detections with each one's keypoints (x, y, "
        "confidence; text lists those >= 0.5), annotated copies with skeletons under --out."
    )
    add_detection_arguments(parser, KEYPOINTS)


def add_detect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Detections for each image from a detection ensemble; annotated copies under --out mirroring the input tree."
    )
    add_detection_arguments(parser, DETECT)


def add_detection_arguments(parser: argparse.ArgumentParser, task: Task) -> None:
    """The arguments of the tasks whose answers are detections."""
    parser.epilog = EXIT_CODES_HELP
    add_job_arguments(parser, task=task.task, default_concurrency=task.default_concurrency)
    parser.add_argument(
        "--threshold",
        type=_fraction,
        default=None,
        help=f"minimum score in [0, 1] (server default {contract.DEFAULT_SCORE_THRESHOLD})",
    )
    parser.add_argument(
        "--max-detections",
        type=positive_int,
        default=None,
        help=f"per image, >= 1 (server default {contract.DEFAULT_MAX_DETECTIONS})",
    )
    parser.add_argument("--out", type=Path, default=Path("out"), help="where annotated images go (default out/)")
    parser.add_argument(
        "--all-detections",
        action="store_true",
        help=f"text output: list every detection (default: the first {records.TEXT_DETECTIONS}, then how many "
        "more); jsonl and csv always have them all",
    )
    add_connection(parser)


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Objects of a pipeline ensemble for each image: its detector's boxes, each object answered by its second "
        "ensemble (one request per image; docs/pipelines.md); annotated copies under --out."
    )
    parser.epilog = EXIT_CODES_HELP
    add_job_arguments(parser, task=PIPELINE.task, default_concurrency=PIPELINE.default_concurrency)
    parser.add_argument(
        "--threshold", type=_fraction, default=None, help="minimum detector score in [0, 1] (default: the pipeline's)"
    )
    parser.add_argument(
        "--max-objects", type=positive_int, default=None, help="objects per image, >= 1 (default: the pipeline's)"
    )
    parser.add_argument(
        "--top-k", type=_top_k, default=None, help="second-stage labels per object (default: its ensemble's)"
    )
    parser.add_argument("--out", type=Path, default=Path("out"), help="where annotated images go (default out/)")
    parser.add_argument(
        "--all-detections",
        action="store_true",
        help=f"text output: list every object (default: the first {records.TEXT_DETECTIONS}); jsonl and csv have all",
    )
    add_connection(parser)


def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Send a tiny image through every ensemble of the server (or those named), as a health check: exit 0 "
        "when all answer; 1 naming those that do not, or when no server answers; 2 on a bad command line."
    )
    parser.add_argument(
        "--ensemble",
        action="append",
        default=None,
        metavar="NAME",
        help="only this one, of any task (repeatable; default: every ensemble of the server)",
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=DEFAULT_TIMEOUT_S, help="seconds per request (default 20)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_connection(parser)


COMMANDS = {
    "classify": Command(add_classify_arguments, job_command(CLASSIFY)),
    "detect": Command(add_detect_arguments, job_command(DETECT)),
    "segment": Command(add_segment_arguments, job_command(SEGMENT)),
    "pipeline": Command(add_pipeline_arguments, job_command(PIPELINE)),
    "embed": Command(add_embed_arguments, job_command(EMBED)),
    "similar": Command(add_similar_arguments, run_similar),
    "instances": Command(add_instances_arguments, job_command(INSTANCES)),
    "keypoints": Command(add_keypoints_arguments, job_command(KEYPOINTS)),
    "probe": Command(add_probe_arguments, cmd_probe),
    "ensembles": Command(add_ensembles_arguments, run_ensembles),
}
