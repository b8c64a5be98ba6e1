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
    return 0


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
