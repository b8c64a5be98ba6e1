"""``triton-vision``: query the ensembles; with the server extra, serve them too.

The client commands (classify, detect, segment) need only the ``client`` extra. Other packages
add commands through the ``triton_vision.commands`` entry-point group: each entry point is a
function that takes the sub-command parser (``triton_vision_server.cli.register`` adds
``serve``, ``models``, ``demo`` and ``perf``). This module imports nothing from them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

import triton_vision_contract as t

from . import records
from .client import DEFAULT_URLS, PROTOCOLS, ClientError, VisionClient
from .folderjob import EXIT_CODES_HELP, Task, add_job_arguments, out_path, run_job

COMMAND_PLUGINS = "triton_vision.commands"  # entry-point group of packages that add commands


def add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=None,
        help=f"server address (default {DEFAULT_URLS['grpc']} for gRPC, {DEFAULT_URLS['http']} for HTTP)",
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, default="grpc")
    parser.add_argument(
        "--model-prefix",
        default="",
        help="prefix of a repository exported with `export-repo --prefix` (calls <prefix>classification, ...)",
    )


def _checked_number(text: str, kind: type, low: float, high: float | None, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def _top_k(text: str) -> int:
    return _checked_number(text, int, 1, 1000, "a whole number in 1..1000")


def _fraction(text: str) -> float:
    return _checked_number(text, float, 0.0, 1.0, "a number in [0, 1]")


def _positive(text: str) -> int:
    return _checked_number(text, int, 1, None, "a whole number >= 1")


def warn_stand_ins(client: VisionClient, models: Sequence[str]) -> None:
    for warning in client.stand_in_warnings(models):
        print(warning, file=sys.stderr)


# -- printing helpers (the server's demo uses them) --------------------------------------------
def print_classifications(paths: Sequence[str], results) -> None:
    for path, result in zip(paths, results, strict=True):
        print(f"{path}:")
        for class_id, score, label in zip(result.class_ids, result.scores, result.labels, strict=True):
            print(f"  {score:7.4f}  {class_id:4d}  {label}")


def print_detections(paths: Sequence[str], results, limit: int | None = None) -> None:
    for path, result in zip(paths, results, strict=True):
        print(f"{path}: {len(result)} detection{'' if len(result) == 1 else 's'}")
        rows = list(zip(result.boxes, result.scores, result.class_ids, result.labels, strict=True))
        for box, score, class_id, label in rows[:limit]:
            x1, y1, x2, y2 = box
            print(f"  {score:6.3f}  {class_id:3d} {label:<16s} [{x1:7.1f} {y1:7.1f} {x2:7.1f} {y2:7.1f}]")
        if limit is not None and len(rows) > limit:
            print(f"  ... and {len(rows) - limit} more (all of them are drawn in the annotated image)")


def write_annotated(paths: Sequence[str], encoded: Sequence[bytes], results, out_dir: Path) -> list[Path]:
    """Each image with its boxes and labels drawn, as out_dir/<name>.detections.jpg."""
    import cv2

    from .annotate import annotate_file

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, data, result in zip(paths, encoded, results, strict=True):
        target = out_dir / f"{Path(path).stem}.detections.jpg"
        if not cv2.imwrite(str(target), annotate_file(data, result)):
            raise OSError(f"cannot write {target}")
        written.append(target)
    return written


def report_segmentations(paths: Sequence[str], results, out_dir: Path) -> None:
    """Print the classes present in each mask; write <stem>_mask.png and <stem>_overlay.png."""
    from .segmentation import describe, write_files

    for path, result in zip(paths, results, strict=True):
        height, width = result.mask.shape
        print(f"{path}: {width}x{height} mask, classes present:")
        for line in describe(result):
            print(line)
        for target in write_files(result, out_dir, Path(path).stem):
            print(f"  wrote {target}")


# -- the commands: folder jobs (see folderjob.py for inputs, formats, resume and exit codes) -------
def start_classify(client: VisionClient, sources, args: argparse.Namespace):
    return client.classify_many(sources, top_k=args.top_k, batch=args.batch, concurrency=args.concurrency)


def start_detect(client: VisionClient, sources, args: argparse.Namespace):
    return client.detect_many(
        sources,
        score_threshold=args.threshold,
        max_detections=args.max_detections,
        batch=args.batch,
        concurrency=args.concurrency,
        keep_data=True,
    )


def save_detect(result, args: argparse.Namespace) -> dict[str, str]:
    """The image with its boxes drawn, as --out/<its place in the input tree>/<stem>.detections.jpg."""
    import cv2

    from .annotate import annotate_file

    target = out_path(args.out, result.source, ".detections.jpg")
    if not cv2.imwrite(str(target), annotate_file(result.data, result.answer)):
        raise OSError(f"cannot write {target}")
    return {"annotated": str(target)}


def start_segment(client: VisionClient, sources, args: argparse.Namespace):
    return client.segment_many(sources, overlay=not args.no_overlay, batch=args.batch, concurrency=args.concurrency)


def save_segment(result, args: argparse.Namespace) -> dict[str, str]:
    """<stem>_mask.png (indexed: pixel = class id) and <stem>_overlay.png under --out, mirroring the inputs."""
    from .segmentation import mask_png

    mask = out_path(args.out, result.source, "_mask.png")
    mask.write_bytes(mask_png(result.answer.mask))
    files = {"mask": str(mask)}
    if result.answer.overlay_png:
        overlay = out_path(args.out, result.source, "_overlay.png")
        overlay.write_bytes(result.answer.overlay_png)
        files["overlay"] = str(overlay)
    return files


CLASSIFY = Task("classified", t.CLASSIFIER, records.CLASSIFICATION, start_classify, default_concurrency=4)
DETECT = Task("detected objects in", t.DETECTOR, records.DETECTION, start_detect, save_detect, default_concurrency=2)
SEGMENT = Task("segmented", t.SEGMENTER, records.SEGMENTATION, start_segment, save_segment, default_concurrency=2)


def job_command(task: Task):
    def command(args: argparse.Namespace) -> int:
        return run_job(args, task)

    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triton-vision", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "classify",
        help="ImageNet top-k labels for image files, folders and globs",
        description="ImageNet top-k labels for each image; many requests in flight, results as they complete.",
        epilog=EXIT_CODES_HELP,
    )
    add_job_arguments(p, default_concurrency=CLASSIFY.default_concurrency)
    p.add_argument(
        "--top-k", type=_top_k, default=None, help=f"labels per image, 1..1000 (server default {t.DEFAULT_TOP_K})"
    )
    add_connection(p)
    p.set_defaults(func=job_command(CLASSIFY))

    p = sub.add_parser(
        "segment",
        help="Pascal VOC class masks for image files and folders: indexed PNG mask and overlay",
        description="Pascal VOC masks for each image, written under --out mirroring the input tree.",
        epilog=EXIT_CODES_HELP,
    )
    add_job_arguments(p, default_concurrency=SEGMENT.default_concurrency)
    p.add_argument("--out", type=Path, default=Path("out"), help="where <stem>_mask.png and <stem>_overlay.png go")
    p.add_argument("--no-overlay", action="store_true", help="write the mask only")
    add_connection(p)
    p.set_defaults(func=job_command(SEGMENT))

    p = sub.add_parser(
        "detect",
        help="COCO detections for image files and folders, recorded and drawn",
        description="COCO detections for each image; annotated copies under --out mirroring the input tree.",
        epilog=EXIT_CODES_HELP,
    )
    add_job_arguments(p, default_concurrency=DETECT.default_concurrency)
    p.add_argument(
        "--threshold",
        type=_fraction,
        default=None,
        help=f"minimum score in [0, 1] (server default {t.DEFAULT_SCORE_THRESHOLD})",
    )
    p.add_argument(
        "--max-detections",
        type=_positive,
        default=None,
        help=f"per image, >= 1 (server default {t.DEFAULT_MAX_DETECTIONS})",
    )
    p.add_argument("--out", type=Path, default=Path("out"), help="where annotated images go (default out/)")
    add_connection(p)
    p.set_defaults(func=job_command(DETECT))

    from .probe import DEFAULT_TIMEOUT_S, ENSEMBLES, cmd_probe

    p = sub.add_parser(
        "probe", help="send a tiny image through every ensemble; exit 0 if all answer, 1 naming those that do not"
    )
    p.add_argument(
        "--ensemble", action="append", default=None, help=f"only this one (repeatable; one of {', '.join(ENSEMBLES)})"
    )
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per request (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_connection(p)
    p.set_defaults(func=cmd_probe)

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
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
