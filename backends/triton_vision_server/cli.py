"""Server-side commands of ``triton-vision``: serve, models, demo, perf, bench, check, export-repo.

The ``triton-vision`` entry point (:mod:`triton_vision_client.cli`) finds these commands through
the ``triton_vision.commands`` entry-point group and calls :func:`register`. The client package
never imports this one: with only the ``client`` extra installed, these commands say which
packages they need instead of failing on an import.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import triton_vision_contract as t
from triton_vision_client.cli import (
    add_connection,
    print_classifications,
    print_detections,
    report_segmentations,
    warn_stand_ins,
    write_annotated,
)
from triton_vision_client.client import VisionClient
from triton_vision_client.images import read_images

DEFAULT_REPOSITORY = Path("model_repository")
# Importable modules the server commands need (the ``server`` extra), and their PyPI names.
SERVER_MODULES = {
    "pytriton": "nvidia-pytriton",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "nvidia.dali": "nvidia-dali-cuda120",
}


def missing_server_packages() -> list[str]:
    """PyPI names of the server extra's packages that this Python cannot import."""
    missing = []
    for module, package in SERVER_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package (``nvidia``) is missing
            found = False
        if not found:
            missing.append(package)
    return missing


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
    import logging

    from triton_vision_client.probe import ENSEMBLES, send
    from triton_vision_server.runtime import LocalTritonServer
    from triton_vision_server.supervisor import TICK_S, Supervisor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s serve: %(message)s", stream=sys.stderr)
    options = _server_options(args)
    print(f"model repository: {options.model_repository.resolve()}")
    _report_sources(options.model_repository)
    server = LocalTritonServer(options)
    stop = {"requested": False}

    def request_stop(signum, _frame) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    try:
        index = server.wait_settled(timeout=args.start_timeout)
        names = {m.name for m in index}
        with VisionClient(options.grpc_url, "grpc", timeout_s=args.probe_timeout) as probe_client:
            supervisor = Supervisor(
                server,
                probe=lambda ensemble: send(probe_client, ensemble),
                probe_interval_s=args.probe_interval,
                probe_ensembles=[e for e in ENSEMBLES if e in names],
            )
            index = supervisor.start()
            down = sorted(m.name for m in index if not m.ready)
            up = sorted(e for e in ENSEMBLES if e in names and e not in down)
            print(
                f"ready: HTTP {options.http_url}  gRPC {options.grpc_url}  "
                f"metrics http://{options.client_host}:{options.metrics_port}/metrics"
            )
            print(f"serving: {', '.join(up) or 'no ensemble'}")
            for state in index:
                if not state.ready:
                    print(f"DOWN: {state.name}: {state.reason or state.state}", file=sys.stderr)
            print("Ctrl-C stops the server.", flush=True)
            while not stop["requested"]:
                if server.process is None or server.process.poll() is not None:
                    code = server.process.returncode if server.process else -1
                    print(f"tritonserver exited with code {code}:\n{server.log_tail()}", file=sys.stderr)
                    return code or 1
                supervisor.tick()
                time.sleep(TICK_S)
            print("stopping tritonserver ...", flush=True)
    finally:
        server.stop()
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
        print(
            ("WARNING: " + line) if source.is_stand_in else line, file=sys.stderr if source.is_stand_in else sys.stdout
        )
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
        warn_stand_ins(client, [t.CLASSIFIER])
        print_classifications(images, client.classify(read_images(images), top_k=args.top_k))
        if (args.model_repository / t.SEGMENTATION).is_dir():
            people = [str(p) for p in args.images] or [str(default_detection_image())]
            warn_stand_ins(client, [t.SEGMENTER])
            report_segmentations(people, client.segment(read_images(people), overlay=True), Path("out"))
        if (args.model_repository / t.DETECTION).is_dir():
            detection_images = [str(p) for p in args.images] or [str(default_detection_image())]
            encoded = read_images(detection_images)
            warn_stand_ins(client, [t.DETECTOR])
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
    """perf_analyzer against a running server, fed real encoded images (a JSON input-data file)."""
    import subprocess
    import tempfile

    from triton_vision_server.perf import perf_analyzer_data_command, perf_analyzer_env

    url = args.url or ("127.0.0.1:8001" if args.protocol == "grpc" else "127.0.0.1:8000")
    with tempfile.TemporaryDirectory() as scratch:
        data_file = args.input_data_out or Path(scratch) / "input_data.json"
        command = perf_analyzer_data_command(
            [Path(image) for image in args.images],
            data_file,
            model=args.model,
            url=url,
            protocol=args.protocol,
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            measurement_ms=args.measurement_ms,
            request_count=args.request_count,
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


def _print_report(report, *, as_json: bool) -> None:
    import json

    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    verdict = "ok" if report.ok else f"{len(report.problems)} problem{'' if len(report.problems) == 1 else 's'}"
    print(f"{report.repository}: {len(report.models)} models checked, {verdict}")


def _quiet_check(repository: Path, models=None):
    """check_repository without the deprecation warnings DALI prints while serializing pipelines."""
    import warnings

    from triton_vision_server.repocheck import check_repository

    with warnings.catch_warnings(record=True):  # recorded, not shown (DALI forces its own filter)
        return check_repository(repository, models)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a model repository offline; exit 0 when it has no problems, 1 otherwise."""
    report = _quiet_check(args.repository)
    _print_report(report, as_json=args.json)
    return 0 if report.ok else 1


def cmd_export_repo(args: argparse.Namespace) -> int:
    """Copy the repository with every model renamed <prefix><name>, then check the copy."""
    from triton_vision_server.export import export_repository

    exported = export_repository(
        args.model_repository, args.dest, prefix=args.prefix, models=args.models, force=args.force
    )
    for model in exported:
        print(f"{model.source} -> {args.dest / model.name}")
    report = _quiet_check(args.dest, [m.name for m in exported])
    _print_report(report, as_json=False)
    if args.prefix:
        print(
            f"clients call the ensembles by their new names ({args.prefix}{t.CLASSIFICATION}, ...): "
            f"triton-vision classify IMAGE --model-prefix {args.prefix}"
        )
    return 0 if report.ok else 1


def _server_command(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Runs ``func`` if the server extra is installed; project errors become one line and exit 1."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        missing = missing_server_packages()
        if missing:
            print(
                f"error: 'triton-vision {args.command}' needs the server extra "
                f"(missing: {', '.join(missing)}): pip install 'triton-vision[server]'",
                file=sys.stderr,
            )
            return 2
        from triton_vision_models.errors import TritonVisionError

        try:
            return func(args)
        except TritonVisionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def register(sub: Any) -> None:
    """Adds the server commands to the ``triton-vision`` sub-command parser ``sub``."""
    p = sub.add_parser("serve", help="run the local tritonserver on model_repository/")
    _add_server_options(p, ports=(8000, 8001, 8002))
    p.add_argument(
        "--probe-interval",
        type=float,
        default=60.0,
        help="seconds between tiny-image probes of every ensemble (two failures reload its models; 0: off)",
    )
    p.add_argument("--probe-timeout", type=float, default=30.0, help="seconds a probe request may take")
    p.add_argument("--start-timeout", type=float, default=240.0, help="seconds to wait for every model to load")
    p.set_defaults(func=_server_command(cmd_serve))

    p = sub.add_parser("models", help="produce the ONNX files the repository serves")
    p.add_argument("action", choices=("prepare", "status"))
    p.add_argument("--model", action="append", help="model directory name (repeatable; default: all)")
    p.add_argument("--from", dest="from_path", type=Path, default=None, help="import a local .onnx file")
    p.add_argument("--stand-in", action="store_true", help="random-weight stand-in with the same tensor contract")
    p.add_argument("--force", action="store_true", help="replace a model that is already prepared")
    p.add_argument("--model-repository", type=Path, default=DEFAULT_REPOSITORY)
    p.set_defaults(func=_server_command(cmd_models))

    p = sub.add_parser("perf", help="run perf_analyzer against an ensemble with real JPEG/PNG images")
    p.add_argument("images", nargs="+", help="JPEG/PNG files; requests cycle through them")
    p.add_argument("--model", default=t.CLASSIFICATION)
    p.add_argument("--batch-size", type=int, default=1, help="images per request (rows zero-padded to the longest)")
    p.add_argument("--concurrency", default="1:4", help="perf_analyzer --concurrency-range (start:end:step)")
    p.add_argument("--measurement-ms", type=int, default=5000)
    p.add_argument("--request-count", type=int, default=None, help="send this many requests, no stability windows")
    p.add_argument("--input-data-out", type=Path, default=None, help="keep perf_analyzer's input-data JSON here")
    add_connection(p)
    p.set_defaults(func=_server_command(cmd_perf))

    p = sub.add_parser("check", help="validate a model repository offline (exit 1 on any problem)")
    p.add_argument("repository", nargs="?", type=Path, default=DEFAULT_REPOSITORY)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_server_command(cmd_check))

    p = sub.add_parser("export-repo", help="copy the repository with every model renamed <prefix><name>")
    p.add_argument("dest", type=Path, help="target model repository (created; may be an existing one)")
    p.add_argument("--prefix", default="", help="prepended to every model name, e.g. tv_")
    p.add_argument(
        "--models", nargs="+", default=None, help="models to export (default: all); what they need comes along"
    )
    p.add_argument("--force", action="store_true", help="replace models of the same name in DEST")
    p.add_argument("--model-repository", type=Path, default=DEFAULT_REPOSITORY)
    p.set_defaults(func=_server_command(cmd_export_repo))

    from triton_vision_server.bench import add_parser as add_bench
    from triton_vision_server.modelgen.cli import register as add_model_command

    add_bench(sub, _server_command)
    add_model_command(sub, _server_command)

    p = sub.add_parser("demo", help="prepare, serve, and answer real photos, then stop")
    p.add_argument("images", nargs="*")
    p.add_argument("--top-k", type=int, default=3)
    _add_server_options(p, ports=(0, 0, 0))
    p.set_defaults(func=_server_command(cmd_demo))
