"""A CLI job over many images: inputs expanded lazily, results written as they complete.

Exit status (also in ``triton-vision classify --help``):

- 0: every image was answered;
- 1: some image failed (missing, unreadable, refused by the server, ...), or none was found;
- 2: the command line is wrong (argparse; ``--resume`` without a resumable ``--output``);
- 3: no server at the address, or it does not serve the ensemble (the job stops);
- 130: interrupted (Ctrl-C); what was written stays, ``--resume`` continues.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .client import VisionClient
from .errors import ClientError
from .inputs import ExpansionStats, ImageSource, count_inputs, expand_inputs
from .jobs import OUTPUT_FAILED, ImageResult
from .progress import Progress, Summary
from .records import FORMATS, RecordKind, RecordWriter, recorded_paths

EXIT_OK = 0
EXIT_IMAGES_FAILED = 1
EXIT_USAGE = 2
EXIT_SERVER = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "exit status: 0 all images answered; 1 some image failed (or none found); 2 bad command line; "
    "3 no server at --url or it lacks the ensemble; 130 interrupted (Ctrl-C; --resume continues)"
)

Start = Callable[[VisionClient, Iterable[ImageSource], argparse.Namespace], Iterator[ImageResult]]
Save = Callable[[ImageResult, argparse.Namespace], dict[str, str]]


@dataclass(frozen=True)
class Task:
    """One command's job: which ensemble, how to ask it, how its answers become records and files."""

    verb: str  # "classified"
    network: str  # the ensemble's ONNX model, named in stand-in warnings
    kind: RecordKind
    start: Start
    save: Save | None = None  # writes an answer's files under --out; returns {record field: path}
    default_concurrency: int = 4


def add_job_arguments(parser: argparse.ArgumentParser, *, default_concurrency: int) -> None:
    parser.add_argument(
        "images",
        nargs="+",
        metavar="INPUT",
        help="image files, directories, globs (quoted: 'photos/**/*.jpg') or - (paths on standard input)",
    )
    parser.add_argument("-r", "--recursive", action="store_true", help="take the images of subdirectories too")
    parser.add_argument("--format", choices=FORMATS, default="text", help="one record per image (default text)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write records to FILE (default stdout)")
    parser.add_argument(
        "--resume", action="store_true", help="skip images already in --output (jsonl or csv) and append to it"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=default_concurrency,
        help=f"requests in flight (default {default_concurrency})",
    )
    parser.add_argument(
        "--batch", type=_positive_int, default=None, help="images per request (default: the ensemble's maximum)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds a request may take, queueing included (default 600)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line, even on a terminal")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def out_path(out_dir: Path, source: ImageSource, suffix: str) -> Path:
    """``out_dir / <source's place in its input tree> / <stem><suffix>``, directories created."""
    target = out_dir / source.relative.parent / f"{source.relative.stem}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _open_output(args: argparse.Namespace) -> tuple[TextIO, bool]:
    """The records' stream and whether a CSV header is still needed."""
    if args.output is None:
        return sys.stdout, True
    fresh = not (args.resume and args.output.exists() and args.output.stat().st_size > 0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    return open(args.output, "a" if args.resume else "w", encoding="utf-8", newline=""), fresh


def run_job(args: argparse.Namespace, task: Task, *, stdin: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdin = sys.stdin if stdin is None else stdin
    stderr = sys.stderr if stderr is None else stderr

    def say(line: str) -> None:
        print(line, file=stderr, flush=True)

    done: set[str] = set()
    if args.resume:
        if args.output is None:
            say("error: --resume needs --output FILE (the file to read back and append to)")
            return EXIT_USAGE
        try:
            done = recorded_paths(args.output, args.format)
        except (ValueError, OSError) as exc:
            say(f"error: {exc}")
            return EXIT_USAGE

    stats = ExpansionStats()
    show_progress = not args.no_progress and stderr.isatty()
    progress = Progress(stderr, enabled=show_progress)
    summary = Summary(task.verb)

    def sources() -> Iterator[ImageSource]:
        for source in expand_inputs(args.images, recursive=args.recursive, stdin=stdin, stats=stats):
            if source.name in done:
                summary.skipped += 1
                progress.skip()
            else:
                yield source

    try:
        client = VisionClient(args.url, args.protocol, timeout_s=args.timeout, model_prefix=args.model_prefix)
    except (ValueError, ClientError) as exc:
        say(f"error: {exc}")
        return EXIT_USAGE
    stopped: str | None = None
    status = EXIT_OK
    start = time.monotonic()
    output: TextIO | None = None
    try:
        for warning in client.stand_in_warnings([task.network]):
            say(warning)
        results = task.start(client, sources(), args)
        first = next(results, None)  # checks the server before anything is written
        if show_progress:
            progress.total = count_inputs(args.images, recursive=args.recursive)
        output, header = _open_output(args)
        writer = RecordWriter(output, args.format, task.kind, write_header=header)
        pending = [first] if first is not None else []
        for result in _chain(pending, results):
            files: dict[str, str] = {}
            if result.ok and task.save is not None:
                try:
                    files = task.save(result, args)
                except (OSError, ValueError) as exc:
                    result = ImageResult(result.source, error=f"cannot write its output: {exc}", reason=OUTPUT_FAILED)
            writer.write(task.kind.record(result, files))
            summary.add(result.path, result.error, result.reason)
            progress.update(result.ok)
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
        stopped = "interrupted: the records written so far are complete" + (
            f"; continue with --resume --output {args.output}" if args.output and args.format != "text" else ""
        )
    except ClientError as exc:
        status = EXIT_SERVER
        stopped = f"error: {exc}"
    except BrokenPipeError:
        status = EXIT_IMAGES_FAILED
        stopped = "stopped: the output was closed"
    finally:
        progress.clear()
        client.close()
        if output is not None and output is not sys.stdout:
            output.close()
    summary.skipped_not_images = stats.skipped_not_images
    for line in summary.lines(time.monotonic() - start, stopped=stopped):
        say(line)
    if status != EXIT_OK:
        return status
    if summary.failed:
        return EXIT_IMAGES_FAILED
    if summary.images == 0 and summary.skipped == 0:
        say("error: no images found in " + " ".join(args.images))
        return EXIT_IMAGES_FAILED
    return EXIT_OK


def _chain(first: list[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from first
    yield from rest
