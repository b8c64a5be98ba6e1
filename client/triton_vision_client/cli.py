"""``triton-vision``: serve the ensembles locally, prepare model files, and query them.

Client commands (classify, ...) need only the ``client`` extra; ``serve``, ``models`` and
``demo`` need the ``server`` extra and a triton-vision checkout.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

from triton_vision_models import tensors as t

from .client import PROTOCOLS, ClientError, VisionClient
from .images import read_images

DEFAULT_REPOSITORY = Path("model_repository")


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="server address (default 127.0.0.1:8001 for gRPC, :8000 for HTTP)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="grpc")


def _client(args: argparse.Namespace) -> VisionClient:
    return VisionClient(args.url, args.protocol)


def _warn_stand_ins(client: VisionClient, models: Sequence[str]) -> None:
    for warning in client.stand_in_warnings(models):
        print(warning, file=sys.stderr)


# -- classify -----------------------------------------------------------------------------
def print_classifications(paths: Sequence[str], results) -> None:
    for path, result in zip(paths, results):
        print(f"{path}:")
        for class_id, score, label in zip(result.class_ids, result.scores, result.labels):
            print(f"  {score:7.4f}  {class_id:4d}  {label}")


def cmd_classify(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _warn_stand_ins(client, [t.CLASSIFIER])
        results = client.classify(read_images(args.images), top_k=args.top_k)
    print_classifications(args.images, results)
    return 0


# -- detect -------------------------------------------------------------------------------
def print_detections(paths: Sequence[str], results, limit: int | None = None) -> None:
    for path, result in zip(paths, results):
        print(f"{path}: {len(result)} detection{'' if len(result) == 1 else 's'}")
        rows = list(zip(result.boxes, result.scores, result.class_ids, result.labels))
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
    for path, data, result in zip(paths, encoded, results):
        target = out_dir / f"{Path(path).stem}.detections.jpg"
        if not cv2.imwrite(str(target), annotate_file(data, result)):
            raise OSError(f"cannot write {target}")
        written.append(target)
    return written


def cmd_detect(args: argparse.Namespace) -> int:
    encoded = read_images(args.images)
    with _client(args) as client:
        _warn_stand_ins(client, [t.DETECTOR])
        results = client.detect(encoded, score_threshold=args.threshold, max_detections=args.max_detections)
    print_detections(args.images, results)
    for target in write_annotated(args.images, encoded, results, args.out):
        print(f"wrote {target}")
    return 0


# -- segment ------------------------------------------------------------------------------
def report_segmentations(paths: Sequence[str], results, out_dir: Path) -> None:
    """Print the classes present in each mask; write <stem>_mask.png and <stem>_overlay.png."""
    from .segmentation import describe, write_files

    for path, result in zip(paths, results):
        height, width = result.mask.shape
        print(f"{path}: {width}x{height} mask, classes present:")
        for line in describe(result):
            print(line)
        for target in write_files(result, out_dir, Path(path).stem):
            print(f"  wrote {target}")


def cmd_segment(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _warn_stand_ins(client, [t.SEGMENTER])
        results = client.segment(read_images(args.images), overlay=not args.no_overlay)
    report_segmentations(args.images, results, args.out)
    return 0


# -- serve / models / demo (server extra) ---------------------------------------------------
def _server_options(args: argparse.Namespace):
    from triton_vision_server.runtime import ServerOptions

    return ServerOptions(
        model_repository=args.model_repository,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log_verbose=args.log_verbose,
        allow_model_control=args.allow_model_control,
    )


def _add_server_options(parser: argparse.ArgumentParser, *, ports: tuple[int, int, int]) -> None:
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_REPOSITORY)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--http-port", type=int, default=ports[0])
    parser.add_argument("--grpc-port", type=int, default=ports[1])
    parser.add_argument("--metrics-port", type=int, default=ports[2])
    parser.add_argument("--log-verbose", type=int, default=0)
    parser.add_argument(
        "--allow-model-control",
        action="store_true",
        help="let clients load/unload models (off by default)",
    )


def _report_sources(repository: Path) -> None:
    from triton_vision_server.modelfiles import CATALOGUE, read_source

    for name in CATALOGUE:
        if not (repository / name).is_dir():
            continue
        source = read_source(repository, name)
        if source is None:
            print(f"  {name}: NOT PREPARED (run `triton-vision models prepare`)", file=sys.stderr)
        elif source.is_stand_in:
            print(f"  WARNING: {name} is a {source.describe()}", file=sys.stderr)
        else:
            print(f"  {name}: {source.describe()}")


def cmd_serve(args: argparse.Namespace) -> int:
    from triton_vision_server.runtime import LocalTritonServer

    options = _server_options(args)
    print(f"model repository: {options.model_repository.resolve()}")
    _report_sources(options.model_repository)
    server = LocalTritonServer(options)
    stop = {"requested": False}

    def request_stop(signum, _frame) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with server:
        print(f"ready: HTTP {options.http_url}  gRPC {options.grpc_url}  metrics http://{options.client_host}:{options.metrics_port}/metrics")
        print("Ctrl-C stops the server.", flush=True)
        while not stop["requested"]:
            if server.process is None or server.process.poll() is not None:
                code = server.process.returncode if server.process else -1
                print(f"tritonserver exited with code {code}:\n{server.log_tail()}", file=sys.stderr)
                return code or 1
            time.sleep(0.5)
        print("stopping tritonserver ...", flush=True)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from triton_vision_server import modelfiles

    names = args.model or [name for name in modelfiles.CATALOGUE if (args.model_repository / name).is_dir()]
    if args.action == "status":
        _report_sources(args.model_repository)
        return 0
    if args.from_path is not None and len(names) != 1:
        print("--from needs exactly one --model", file=sys.stderr)
        return 2
    for name in names:
        entry = modelfiles.CATALOGUE.get(name)
        if entry is None:
            print(f"unknown model '{name}' (known: {', '.join(modelfiles.CATALOGUE)})", file=sys.stderr)
            return 2
        source = modelfiles.prepare(
            args.model_repository,
            entry,
            from_path=args.from_path,
            stand_in=args.stand_in,
            force=args.force,
            report=lambda message: print(message, file=sys.stderr),
        )
        line = f"{name}: {source.describe()}"
        print(("WARNING: " + line) if source.is_stand_in else line, file=sys.stderr if source.is_stand_in else sys.stdout)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Prepare models, serve them, answer real photos, stop."""
    from triton_vision_server import modelfiles
    from triton_vision_server.runtime import LocalTritonServer, free_port

    for name, entry in modelfiles.CATALOGUE.items():
        if (args.model_repository / name).is_dir():
            source = modelfiles.prepare(args.model_repository, entry, report=lambda m: print(m, file=sys.stderr))
            print(f"{name}: {source.describe()}")
    args.http_port, args.grpc_port, args.metrics_port = free_port(), free_port(), free_port()
    options = _server_options(args)
    images = [str(p) for p in args.images] or [str(p) for p in default_demo_images()]
    with LocalTritonServer(options), VisionClient(options.grpc_url, "grpc") as client:
        print(f"tritonserver ready: gRPC {options.grpc_url}, HTTP {options.http_url}")
        _warn_stand_ins(client, [t.CLASSIFIER])
        print_classifications(images, client.classify(read_images(images), top_k=args.top_k))
        if (args.model_repository / t.SEGMENTATION).is_dir():
            people = [str(p) for p in args.images] or [str(default_detection_image())]
            _warn_stand_ins(client, [t.SEGMENTER])
            report_segmentations(people, client.segment(read_images(people), overlay=True), Path("out"))
        if (args.model_repository / t.DETECTION).is_dir():
            detection_images = [str(p) for p in args.images] or [str(default_detection_image())]
            encoded = read_images(detection_images)
            _warn_stand_ins(client, [t.DETECTOR])
            results = client.detect(encoded)
            print_detections(detection_images, results, limit=10)
            for target in write_annotated(detection_images, encoded, results, Path("out")):
                print(f"wrote {target}")
    return 0


def default_detection_image() -> Path:
    """A real photo of people: ../shared/images/persons.jpg if present, else scikit-image's astronaut."""
    persons = Path("../shared/images/persons.jpg")
    if persons.is_file():
        return persons
    import cv2
    from skimage import data

    path = Path("out") / "astronaut.png"
    path.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def cmd_perf(args: argparse.Namespace) -> int:
    """perf_analyzer against a running server, fed a real encoded image."""
    import subprocess
    import tempfile

    from triton_vision_server.perf import perf_analyzer_command, perf_analyzer_env

    url = args.url or ("127.0.0.1:8001" if args.protocol == "grpc" else "127.0.0.1:8000")
    with tempfile.TemporaryDirectory() as data_dir:
        command = perf_analyzer_command(
            Path(args.image), Path(data_dir), model=args.model, url=url, protocol=args.protocol,
            concurrency=args.concurrency, measurement_ms=args.measurement_ms,
        )
        print(" ".join(command), flush=True)
        return subprocess.call(command, env=perf_analyzer_env())


def default_demo_images() -> list[Path]:
    """Real photos: ../shared/images if present, else scikit-image's chelsea (a tabby cat)."""
    shared = Path("../shared/images")
    found = sorted(shared.glob("*.jpg")) if shared.is_dir() else []
    if found:
        return found
    import cv2
    from skimage import data

    path = Path("out") / "chelsea.png"
    path.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR))
    return [path]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triton-vision", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="ImageNet top-k labels for image files")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=None, help=f"labels per image (server default {t.DEFAULT_TOP_K})")
    _add_connection(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("segment", help="Pascal VOC class masks for image files: indexed PNG mask and overlay")
    p.add_argument("images", nargs="+")
    p.add_argument("--out", type=Path, default=Path("out"), help="where <stem>_mask.png and <stem>_overlay.png go")
    p.add_argument("--no-overlay", action="store_true", help="write the mask only")
    _add_connection(p)
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
    _add_connection(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("serve", help="run the local tritonserver on model_repository/")
    _add_server_options(p, ports=(8000, 8001, 8002))
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("models", help="produce the ONNX files the repository serves")
    p.add_argument("action", choices=("prepare", "status"))
    p.add_argument("--model", action="append", help="model directory name (repeatable; default: all)")
    p.add_argument("--from", dest="from_path", type=Path, default=None, help="import a local .onnx file")
    p.add_argument("--stand-in", action="store_true", help="random-weight stand-in with the same tensor contract")
    p.add_argument("--force", action="store_true", help="replace a model that is already prepared")
    p.add_argument("--model-repository", type=Path, default=DEFAULT_REPOSITORY)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("perf", help="run perf_analyzer against an ensemble with a real image")
    p.add_argument("image")
    p.add_argument("--model", default=t.CLASSIFICATION)
    p.add_argument("--concurrency", default="1:4", help="perf_analyzer --concurrency-range (start:end:step)")
    p.add_argument("--measurement-ms", type=int, default=5000)
    _add_connection(p)
    p.set_defaults(func=cmd_perf)

    p = sub.add_parser("demo", help="prepare, serve, and answer real photos, then stop")
    p.add_argument("images", nargs="*")
    p.add_argument("--top-k", type=int, default=3)
    _add_server_options(p, ports=(0, 0, 0))
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - project errors reach the user as one line
        from triton_vision_models.errors import TritonVisionError

        if isinstance(exc, TritonVisionError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
