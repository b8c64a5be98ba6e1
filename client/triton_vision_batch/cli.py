"""``triton-vision batch TASK INPUT... -o OUT --url A --url B``: a folder job on a Ray cluster.

The inputs are listed and the servers asked before any work starts: a missing folder or bucket,
an output that cannot be written or parts of an earlier run without ``--resume`` is a usage
error (exit 2), a server that does not answer or lacks the ensemble exit 3, each one line. Then
chunks of images go to Ray actors (each calls one of the ``--url`` servers) and every answered
chunk becomes a Parquet part under OUT. Exit 0: every image answered; 1: some failed (a failed row
names why) or none was found; 130: interrupted (``--resume`` continues).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from triton_vision_client.cli import _fraction, _top_k
from triton_vision_client.client import VisionClient
from triton_vision_client.connection import PROTOCOL_ENV, PROTOCOLS, URL_ENV
from triton_vision_client.discovery import stand_in_warning
from triton_vision_client.errors import ClientError
from triton_vision_client.folderjob import (
    EXIT_IMAGES_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_USAGE,
    check_protocol,
    non_negative_float,
    positive_float,
    positive_int,
)
from triton_vision_client.jobs import DEFAULT_RETRY_BUDGET_S
from triton_vision_client.progress import Progress, Summary
from triton_vision_client.tasks import CLASSIFY, DETECT, PIPELINE, SEGMENT
from triton_vision_contract.errors import UsageError

from .parquet import PartStore
from .ray_job import CallOptions, ChunkAnswer, connect, run_chunks
from .sources import list_inputs

JOBS = {"classify": CLASSIFY, "detect": DETECT, "segment": SEGMENT, "pipeline": PIPELINE}
DEFAULT_CHUNK = 64
ACTORS_PER_URL = 2
EXIT_CODES = (
    "exit status: 0 all images answered; 1 some image failed (a row says why) or none found; 2 bad command line, "
    "a missing input or an unwritable output (nothing sent); 3 a server does not answer or lacks the ensemble; "
    "130 interrupted (--resume continues)"
)


def _common(parser: argparse.ArgumentParser, default_concurrency: int) -> None:
    parser.epilog = EXIT_CODES
    parser.add_argument(
        "images",
        nargs="+",
        metavar="INPUT",
        help="image files, folders, globs, or fsspec URLs of them (s3://bucket/photos, gs://..., file://...)",
    )
    parser.add_argument("-r", "--recursive", action="store_true", help="take the images of subfolders too")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="a folder (or fsspec URL) for the Parquet parts"
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip the images OUT's parts have answered, send the failed ones again"
    )
    parser.add_argument(
        "--keep-failed", action="store_true", help="with --resume: keep the failed rows and skip those images too"
    )
    parser.add_argument(
        "--url",
        action="append",
        default=None,
        metavar="HOST:PORT",
        help=f"a server (repeatable: actors are spread over them; a Kubernetes Service is one) (default ${URL_ENV}, "
        "else the local default)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=os.environ.get(PROTOCOL_ENV, "").strip().lower() or "grpc",
        help=f"default ${PROTOCOL_ENV}, else grpc",
    )
    parser.add_argument("--model-prefix", default="", help="prefix of a repository exported with --prefix")
    parser.add_argument("--ensemble", default=None, metavar="NAME", help="any ensemble of the task")
    parser.add_argument("--batch", type=positive_int, default=None, help="images per request (default: the maximum)")
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=default_concurrency,
        help=f"requests in flight per actor (default {default_concurrency})",
    )
    parser.add_argument("--timeout", type=positive_float, default=600.0, help="seconds a request may take")
    parser.add_argument(
        "--retry-for",
        type=non_negative_float,
        default=DEFAULT_RETRY_BUDGET_S,
        metavar="SECONDS",
        help="send a request the server calls temporarily unavailable again with back-off, for up to SECONDS "
        f"(default {DEFAULT_RETRY_BUDGET_S:g}; 0: never)",
    )
    parser.add_argument(
        "--actors", type=positive_int, default=None, help=f"Ray actors (default {ACTORS_PER_URL} per --url)"
    )
    parser.add_argument(
        "--chunk",
        type=positive_int,
        default=DEFAULT_CHUNK,
        help=f"images per task of an actor, and per Parquet part (default {DEFAULT_CHUNK})",
    )
    parser.add_argument("--actor-cpus", type=positive_float, default=1.0, help="CPUs Ray reserves per actor")
    parser.add_argument(
        "--ray-address",
        default=None,
        help="a Ray cluster to join (default $RAY_ADDRESS; none: a local Ray with a CPU per actor)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line, even on a terminal")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "A folder job on a Ray cluster: images from folders or object storage (fsspec URLs) answered by Ray "
        "actors calling one or more servers, one Parquet row per image (the folder job's JSON Lines fields)."
    )
    sub = parser.add_subparsers(dest="task_command", required=True, metavar="TASK")
    classify = sub.add_parser("classify", help="top-k labels per image")
    _common(classify, CLASSIFY.default_concurrency)
    classify.add_argument("--top-k", type=_top_k, default=None, help="labels per image (default: the server's)")
    detect = sub.add_parser("detect", help="detections per image")
    _common(detect, DETECT.default_concurrency)
    detect.add_argument("--threshold", type=_fraction, default=None, help="minimum score in [0, 1]")
    detect.add_argument("--max-detections", type=positive_int, default=None, help="per image")
    segment = sub.add_parser("segment", help="classes present per image (masks are not written)")
    _common(segment, SEGMENT.default_concurrency)
    pipeline = sub.add_parser("pipeline", help="objects per image, each classified")
    _common(pipeline, PIPELINE.default_concurrency)
    pipeline.add_argument("--threshold", type=_fraction, default=None, help="minimum detector score in [0, 1]")
    pipeline.add_argument("--max-objects", type=positive_int, default=None, help="objects per image")
    pipeline.add_argument("--top-k", type=_top_k, default=None, help="second-stage labels per object")


def _task_arguments(args: argparse.Namespace) -> dict:
    """What the task's ``start`` function reads of a folder job's arguments."""
    return {
        "ensemble": args.ensemble,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "retry_for": args.retry_for,
        "top_k": getattr(args, "top_k", None),
        "threshold": getattr(args, "threshold", None),
        "max_detections": getattr(args, "max_detections", None),
        "max_objects": getattr(args, "max_objects", None),
        "no_overlay": True,  # no files are written: an overlay would only travel
    }


def check_servers(args: argparse.Namespace, task: str, say) -> list[str]:
    """Each server's address, after asking it for the ensemble (raises ClientError, UsageError)."""
    urls = []
    for index, url in enumerate(args.url or [None]):
        with VisionClient(url, args.protocol, timeout_s=min(args.timeout, 30.0), model_prefix=args.model_prefix) as c:
            model, _ = c.plan(task, args.ensemble, args.batch, top_k=getattr(args, "top_k", None))
            c.check_ready(model)
            if index == 0:
                for stand_in in c.ensemble(model).stand_in:
                    say(stand_in_warning(stand_in))
            urls.append(c.url)
    return urls


def run(args: argparse.Namespace) -> int:
    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    job = JOBS[args.task_command]
    start = time.monotonic()
    try:
        check_protocol(args.protocol)
        if args.keep_failed and not args.resume:
            raise UsageError("--keep-failed goes with --resume")
        store = PartStore(args.output, job.task)
        store.prepare()
        answered: set[str] = set()
        failed: set[str] = set()
        if args.resume:
            answered, failed = store.read_back()
        elif store.parts():
            raise UsageError(
                f"--output {args.output} holds the parts of an earlier run: give --resume to continue it, "
                "or another folder"
            )
        listing = list_inputs(args.images, recursive=args.recursive)
        urls = check_servers(args, job.task, say)
    except ValueError as exc:  # UsageError, a malformed --url
        say(f"error: {exc}")
        return EXIT_USAGE
    except ClientError as exc:
        say(f"error: {exc}")
        return EXIT_SERVER
    if not listing.items:
        say("error: no images found in " + " ".join(args.images))
        return EXIT_IMAGES_FAILED
    skip = answered | failed if args.keep_failed else answered
    pending = [item for item in listing.items if item.name not in skip]
    if failed and not args.keep_failed:
        store.drop_failed()

    summary = Summary(job.verb)
    summary.skipped = len(listing.items) - len(pending)
    summary.skipped_not_images = listing.skipped_not_images
    progress = Progress(sys.stderr, enabled=not args.no_progress and sys.stderr.isatty(), total=len(listing.items))
    progress.skipped = summary.skipped

    def on_chunk(chunk: ChunkAnswer) -> None:
        store.write(chunk.records)
        for message in chunk.retries:
            summary.retried(message)
        for record in chunk.records:
            summary.add(record["path"], record.get("error"), record.get("reason"))
            progress.update("error" not in record)

    actors = args.actors or ACTORS_PER_URL * len(urls)
    options = CallOptions(job.task, args.protocol, args.timeout, args.model_prefix, _task_arguments(args))
    stopped: str | None = None
    status = EXIT_OK
    try:
        if pending:
            connect(args.ray_address, local_cpus=max(1, int(actors * args.actor_cpus + 0.999)))
            stopped = run_chunks(
                urls,
                options,
                pending,
                actors=actors,
                chunk_size=args.chunk,
                actor_cpus=args.actor_cpus,
                on_chunk=on_chunk,
            )
            if stopped is not None:
                status, stopped = EXIT_SERVER, f"error: {stopped}"
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
        stopped = f"interrupted: the parts written are complete; continue with --resume -o {args.output}"
    finally:
        progress.clear()
    if status != EXIT_OK:
        summary.sent, summary.given = len(pending), len(listing.items)
    summary.notes.append(f"wrote {store.written} Parquet part{'' if store.written == 1 else 's'} to {args.output}")
    for line in summary.lines(time.monotonic() - start, stopped=stopped):
        say(line)
    if status != EXIT_OK:
        return status
    return EXIT_IMAGES_FAILED if summary.failed else EXIT_OK
