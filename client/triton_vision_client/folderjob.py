"""A CLI job over many images: inputs expanded lazily, results written as they complete.

Before anything is sent, the job checks what it will write (``--output``, ``--out``) and asks
the server about the ensemble (its task, its images per request, its stand-in models).

Exit status (also in ``triton-vision classify --help``):

- 0: every image was answered;
- 1: some image failed (missing, unreadable, refused by the server, ...), or none was found;
- 2: the command line is wrong (argparse; an output that cannot be written; ``--resume`` without
  a resumable ``--output``; a malformed ``--url``; an ensemble of another task; ``--batch``
  above the ensemble's max_batch_size; ``--top-k`` above its class count);
- 3: no server at the address, or it does not serve the ensemble (the job stops);
- 130: interrupted (Ctrl-C); what was written stays, ``--resume`` continues.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Any, TextIO

import triton_vision_contract as contract

from .client import VisionClient
from .connection import DEFAULT_URLS, PROTOCOL_ENV, PROTOCOLS, URL_ENV
from .discovery import stand_in_warning
from .errors import ClientError, UsageError
from .inputs import STDIN, ExpansionStats, ImageSource, count_inputs, expand_inputs
from .jobs import DEFAULT_RETRY_BUDGET_S, OUTPUT_FAILED, ImageResult
from .progress import Progress, Summary
from .records import FORMATS, TEXT_DETECTIONS, RecordKind, RecordWriter, drop_failed_records, read_back

EXIT_OK = 0
EXIT_IMAGES_FAILED = 1
EXIT_USAGE = 2
EXIT_SERVER = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "exit status: 0 all images answered; 1 some image failed (or none found); 2 bad command line "
    "(nothing sent); 3 no server at --url or it lacks the ensemble; 130 interrupted (Ctrl-C; --resume continues)"
)

# (client, sources, args, on_retry) -> results as they complete
Start = Callable[
    [VisionClient, Iterable[ImageSource], argparse.Namespace, Callable[[str], None]], Iterator[ImageResult]
]
Save = Callable[[ImageResult, Path], dict[str, str]]


@dataclass(frozen=True)
class Task:
    """One command's job: which task's ensembles, how to ask them, how answers become records and files."""

    task: str  # a contract task: the default ensemble, and the only kind --ensemble may name
    verb: str  # "classified"
    kind: RecordKind
    start: Start
    save: Save | None = None  # writes an answer's files under an output folder; returns {record field: path}
    default_concurrency: int = 4
    out_suffix: str = ""  # the suffix of the first file ``save`` writes for an image (<stem><suffix>)


def add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=None,
        help=f"server address HOST:PORT (default ${URL_ENV}, else {DEFAULT_URLS['grpc']} for gRPC, "
        f"{DEFAULT_URLS['http']} for HTTP)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=os.environ.get(PROTOCOL_ENV, "").strip().lower() or "grpc",
        help=f"default ${PROTOCOL_ENV}, else grpc",
    )
    parser.add_argument(
        "--model-prefix",
        default="",
        help="prefix of a repository exported with `export-repo --prefix`: every model called is <prefix><name>",
    )


def check_protocol(protocol: str) -> None:
    """An invalid protocol can only come from the environment (argparse checks --protocol)."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"{PROTOCOL_ENV}={protocol}: expected one of {', '.join(PROTOCOLS)}")


def add_job_arguments(parser: argparse.ArgumentParser, *, task: str, default_concurrency: int) -> None:
    parser.add_argument(
        "images",
        nargs="+",
        metavar="INPUT",
        help="image files, directories, globs (quoted: 'photos/**/*.jpg') or - (paths on standard input)",
    )
    parser.add_argument("-r", "--recursive", action="store_true", help="take the images of subdirectories too")
    parser.add_argument(
        "--ensemble",
        default=None,
        metavar="NAME",
        help=f"any {task} ensemble of the server (default: "
        + (task if task in contract.BUILT_IN_ENSEMBLES else f"the server's only {task}")
        + "; `triton-vision ensembles` lists them)",
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="one record per image (default text)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write records to FILE (default stdout)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --output (jsonl or csv): skip the images it has answered, send its failed ones again, append",
    )
    parser.add_argument(
        "--keep-failed", action="store_true", help="with --resume: keep the failed records and skip those images too"
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=default_concurrency,
        help=f"requests in flight (default {default_concurrency})",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=None,
        help="images per request, at most the ensemble's max_batch_size (default: that maximum; more is refused)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=600.0,
        help="seconds a request may take, queueing included (default 600)",
    )
    parser.add_argument(
        "--retry-for",
        type=non_negative_float,
        default=DEFAULT_RETRY_BUDGET_S,
        metavar="SECONDS",
        help="send a request the server calls temporarily unavailable (a model loading or healing, a full "
        "queue) again after a wait doubling from 0.25 s to 8 s (half of it at random), for up to SECONDS "
        "after its first such answer "
        f"(default {DEFAULT_RETRY_BUDGET_S:g}; 0: never)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line, even on a terminal")


def _number(text: str, kind: type, low: float, *, above: bool) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number, got '{text}'") from None
    if value < low or (above and value == low) or value != value:  # value != value: NaN
        raise argparse.ArgumentTypeError(f"must be {'above' if above else 'at least'} {low:g}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, 1, above=False)


def positive_float(text: str) -> float:
    return _number(text, float, 0.0, above=True)


def non_negative_float(text: str) -> float:
    return _number(text, float, 0.0, above=False)


def out_path(out_dir: Path, source: ImageSource, suffix: str) -> Path:
    """``out_dir / <source's place in its input tree> / <stem><suffix>``, directories created."""
    target = out_dir / source.relative.parent / f"{source.relative.stem}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


class OutputNames:
    """A place under ``--out`` of its own for every input of a job, so that no output overwrites
    another written by the same run: inputs whose places would be the same (``a/kitten.jpg`` and
    ``b/kitten.jpg`` given as files, ``kitten.jpg`` and ``kitten.png``) keep the first one's and
    the later ones get ``kitten-2``, ``kitten-3``, ... Places are given in input order (not in the
    order answers arrive), to every input, skipped ones too: the same inputs get the same places in
    every run, so ``--resume`` writes where the first run would have."""

    def __init__(self) -> None:
        self.taken: set[PurePath] = set()  # places without their suffix
        self.renamed = 0
        self.first: tuple[str, PurePath] | None = None  # the first renamed input and its new place

    def place(self, source: ImageSource) -> ImageSource:
        relative = source.relative
        stem, number = relative.stem, 1
        while relative.parent / stem in self.taken:
            number += 1
            stem = f"{relative.stem}-{number}"
        self.taken.add(relative.parent / stem)
        if number == 1:
            return source
        self.renamed += 1
        moved = replace(source, relative=relative.parent / f"{stem}{relative.suffix}")
        self.first = self.first or (source.name, moved.relative)
        return moved

    def report(self, out_dir: Path, suffix: str) -> str | None:
        """What was renamed, or None."""
        if self.first is None:
            return None
        name, relative = self.first
        first = out_dir / relative.parent / f"{relative.stem}{suffix}"
        return (
            f"{self.renamed} output{'' if self.renamed == 1 else 's'} renamed: their inputs share a name "
            f"under --out (first: {name} -> {first})"
        )


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _cannot_create_in(directory: Path) -> str | None:
    """Why no file can be created in ``directory`` (tried, then removed), or None."""
    try:
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def output_problem(path: Path, option: str, *, directory: bool, fmt: str = "jsonl") -> str | None:
    """Why ``path`` (a records file, or with ``directory`` a folder for images) cannot be written,
    or None. Nothing is created: a missing folder on the way is created when the job writes."""
    if directory and path.exists() and not path.is_dir():
        return f"{option} {path} is a file, not a directory"
    if not directory and path.is_dir():
        example = path / f"records.{'txt' if fmt == 'text' else fmt}"
        return f"{option} {path} is a directory: give a file, e.g. {option} {example}"
    if not directory and path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        except OSError as exc:
            return f"{option} {path}: cannot write to it ({exc.strerror or exc})"
        return None
    ancestor = _nearest_existing(path if directory else path.parent)
    if not ancestor.is_dir():
        return f"{option} {path}: {ancestor} is not a directory"
    reason = _cannot_create_in(ancestor)
    return f"{option} {path}: cannot create files in {ancestor} ({reason})" if reason else None


def _open_output(args: argparse.Namespace, drop_failed: bool) -> tuple[TextIO, bool]:
    """The records' stream and whether a CSV header is still needed."""
    if args.output is None:
        return sys.stdout, True
    if drop_failed:
        drop_failed_records(args.output, args.format)
    fresh = not (args.resume and args.output.exists() and args.output.stat().st_size > 0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    return open(args.output, "a" if args.resume else "w", encoding="utf-8", newline=""), fresh


def _given(args: argparse.Namespace, progress: Progress) -> int | None:
    """How many images the inputs name (None with paths on stdin, or on a second Ctrl-C)."""
    if progress.total is not None:
        return progress.total
    if STDIN in args.images:
        return None
    try:
        return count_inputs(args.images, recursive=args.recursive)
    except KeyboardInterrupt:
        return None


def run_job(args: argparse.Namespace, task: Task, *, stdin: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdin = sys.stdin if stdin is None else stdin
    stderr = sys.stderr if stderr is None else stderr

    def say(line: str) -> None:
        print(line, file=stderr, flush=True)

    skip: set[str] = set()
    drop_failed = False
    problems = []
    if args.output is not None:
        problems.append(output_problem(args.output, "--output", directory=False, fmt=args.format))
    if task.save is not None:
        problems.append(output_problem(args.out, "--out", directory=True))
    if args.keep_failed and not args.resume:
        problems.append("--keep-failed goes with --resume")
    if args.resume and args.output is None:
        problems.append("--resume needs --output FILE (the file to read back and append to)")
    for problem in problems:
        if problem:
            say(f"error: {problem}")
            return EXIT_USAGE
    if args.resume:
        try:
            answered, failed = read_back(args.output, args.format)
        except (ValueError, OSError) as exc:
            say(f"error: {exc}")
            return EXIT_USAGE
        skip = answered | failed if args.keep_failed else answered
        drop_failed = bool(failed) and not args.keep_failed

    stats = ExpansionStats()
    show_progress = not args.no_progress and stderr.isatty()
    progress = Progress(stderr, enabled=show_progress)
    summary = Summary(task.verb)
    taken = 0

    names = OutputNames() if task.save is not None else None

    def sources() -> Iterator[ImageSource]:
        nonlocal taken
        for source in expand_inputs(args.images, recursive=args.recursive, stdin=stdin, stats=stats):
            if names is not None:
                source = names.place(source)
            if source.name in skip:
                summary.skipped += 1
                progress.skip()
            else:
                taken += 1
                yield source

    try:
        check_protocol(args.protocol)
        client = VisionClient(args.url, args.protocol, timeout_s=args.timeout, model_prefix=args.model_prefix)
    except (ValueError, ClientError) as exc:
        say(f"error: {exc}")
        return EXIT_USAGE
    stopped: str | None = None
    status = EXIT_OK
    start = time.monotonic()
    output: TextIO | None = None
    try:
        top_k = getattr(args, "top_k", None)  # classify's
        ensemble, _ = client.plan(task.task, args.ensemble, args.batch, top_k=top_k)  # nothing sent if it cannot work
        for model in client.ensemble(ensemble).stand_in:
            say(stand_in_warning(model))
        results = task.start(client, sources(), args, summary.retried)
        first = next(results, None)  # checks the server before anything is written
        if show_progress:
            progress.total = count_inputs(args.images, recursive=args.recursive)
        output, header = _open_output(args, drop_failed)
        limit = None if getattr(args, "all_detections", False) else TEXT_DETECTIONS
        writer = RecordWriter(output, args.format, task.kind, write_header=header, text_limit=limit)
        for result in _chain([first] if first is not None else [], results):
            files: dict[str, str] = {}
            if result.ok and task.save is not None:
                try:
                    files = task.save(result, args.out)
                except (OSError, ValueError) as exc:
                    result = ImageResult(result.source, error=f"cannot write its output: {exc}", reason=OUTPUT_FAILED)
            writer.write(task.kind.record(result, files))
            summary.add(result.path, result.error, result.reason)
            progress.update(result.ok)
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
        progress.clear()
        summary.sent, summary.given = taken, _given(args, progress)
        stopped = "interrupted: the records written so far are complete" + (
            f"; continue with --resume --output {args.output}" if args.output and args.format != "text" else ""
        )
    except UsageError as exc:
        status = EXIT_USAGE
        stopped = f"error: {exc}"
    except ClientError as exc:
        status = EXIT_SERVER
        stopped = f"error: {exc}"
    except BrokenPipeError:
        status = EXIT_IMAGES_FAILED
        stopped = "stopped: the output was closed"
    except OSError as exc:  # the records' file or stream (the check before the job could not foresee it)
        status = EXIT_USAGE if output is None else EXIT_IMAGES_FAILED
        stopped = f"error: cannot write {args.output or 'the standard output'}: {exc.strerror or exc}"
    finally:
        progress.clear()
        client.close()
        if output is not None and output is not sys.stdout:
            output.close()
    summary.skipped_not_images = stats.skipped_not_images
    summary.skipped_subfolders = stats.skipped_subfolders
    renamed = names.report(args.out, task.out_suffix) if names is not None else None
    if renamed:
        summary.notes.append(renamed)
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
