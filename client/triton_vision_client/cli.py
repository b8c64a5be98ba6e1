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

from .client import PROTOCOLS, ClientError, VisionClient
from .images import read_images

COMMAND_PLUGINS = "triton_vision.commands"  # entry-point group of packages that add commands


def add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="server address (default 127.0.0.1:8001 for gRPC, :8000 for HTTP)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="grpc")
    parser.add_argument(
        "--model-prefix",
        default="",
        help="prefix of a repository exported with `export-repo --prefix` (calls <prefix>classification, ...)",
    )


def _client(args: argparse.Namespace) -> VisionClient:
    return VisionClient(args.url, args.protocol, model_prefix=getattr(args, "model_prefix", ""))


def warn_stand_ins(client: VisionClient, models: Sequence[str]) -> None:
    for warning in client.stand_in_warnings(models):
        print(warning, file=sys.stderr)


# -- classify -----------------------------------------------------------------------------
def print_classifications(paths: Sequence[str], results) -> None:
    for path, result in zip(paths, results, strict=True):
        print(f"{path}:")
        for class_id, score, label in zip(result.class_ids, result.scores, result.labels, strict=True):
            print(f"  {score:7.4f}  {class_id:4d}  {label}")


def cmd_classify(args: argparse.Namespace) -> int:
    with _client(args) as client:
        warn_stand_ins(client, [t.CLASSIFIER])
        results = client.classify(read_images(args.images), top_k=args.top_k)
    print_classifications(args.images, results)
    return 0


# -- detect -------------------------------------------------------------------------------
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


def cmd_detect(args: argparse.Namespace) -> int:
    encoded = read_images(args.images)
    with _client(args) as client:
        warn_stand_ins(client, [t.DETECTOR])
        results = client.detect(encoded, score_threshold=args.threshold, max_detections=args.max_detections)
    print_detections(args.images, results)
    for target in write_annotated(args.images, encoded, results, args.out):
        print(f"wrote {target}")
    return 0


# -- segment ------------------------------------------------------------------------------
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


def cmd_segment(args: argparse.Namespace) -> int:
    with _client(args) as client:
        warn_stand_ins(client, [t.SEGMENTER])
        results = client.segment(read_images(args.images), overlay=not args.no_overlay)
    report_segmentations(args.images, results, args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triton-vision", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="ImageNet top-k labels for image files")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=None, help=f"labels per image (server default {t.DEFAULT_TOP_K})")
    add_connection(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("segment", help="Pascal VOC class masks for image files: indexed PNG mask and overlay")
    p.add_argument("images", nargs="+")
    p.add_argument("--out", type=Path, default=Path("out"), help="where <stem>_mask.png and <stem>_overlay.png go")
    p.add_argument("--no-overlay", action="store_true", help="write the mask only")
    add_connection(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("detect", help="COCO detections for image files, printed and drawn")
    p.add_argument("images", nargs="+")
    p.add_argument(
        "--threshold", type=float, default=None, help=f"minimum score (server default {t.DEFAULT_SCORE_THRESHOLD})"
    )
    p.add_argument(
        "--max-detections", type=int, default=None, help=f"per image (server default {t.DEFAULT_MAX_DETECTIONS})"
    )
    p.add_argument("--out", type=Path, default=Path("out"), help="where annotated images go (default out/)")
    add_connection(p)
    p.set_defaults(func=cmd_detect)

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
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
