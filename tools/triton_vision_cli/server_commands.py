"""Server-side commands of ``triton-vision``: serve, models, demo, perf, bench, check, export-repo,
model-analyzer.

The ``triton-vision`` entry point (:mod:`triton_vision_client.cli`) finds these commands through
the ``triton_vision.commands`` entry-point group and calls :func:`register`, and the ``models``
actions through ``triton_vision.model_actions`` (:func:`register_model_actions`). The client package
never imports this one: with only the ``client`` extra installed, these commands say which
packages they need instead of failing on an import. Errors of the project become one ``error:``
line: exit 2 for usage errors (:class:`~triton_vision_serving.errors.UsageError`), else 1.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import triton_vision_contract as contract
from triton_vision_serving.memory import DEFAULT_TRIM_ABOVE_BYTES
from triton_vision_ui.launch import add_ui_port, with_ui

DEFAULT_REPOSITORY = Path("model_repository")
# Importable modules the server commands need (the ``server`` extra), and their PyPI names.
SERVER_MODULES = {
    "pytriton": "nvidia-pytriton",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "nvidia.dali": "nvidia-dali-cuda120",
}
DEFAULT_PORTS = (contract.DEFAULT_HTTP_PORT, contract.DEFAULT_GRPC_PORT, contract.DEFAULT_METRICS_PORT)


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


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


# -- options shared by serve and demo -----------------------------------------------------------
def _server_options(args: argparse.Namespace):
    from triton_vision_serving.server_config import ServerOptions

    return ServerOptions(
        model_repository=args.model_repository,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log_verbose=args.log_verbose,
        allow_model_control=args.allow_model_control,
        log_dir=args.log_dir,
        cache_size=args.cache_size,
    )


def _byte_size(text: str) -> int:
    from triton_vision_serving.server_config import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_repository(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-repository",
        type=Path,
        default=DEFAULT_REPOSITORY,
        help="the model repository (default: %(default)s, relative to the current directory)",
    )


def _add_server_options(parser: argparse.ArgumentParser, *, ports: tuple[int | None, ...]) -> None:
    _add_repository(parser)
    parser.add_argument(
        "--host", default=contract.DEFAULT_HOST, help="address to bind (default %(default)s: this machine only)"
    )
    free = "a free port"
    for option, default, what in zip(
        ("--http-port", "--grpc-port", "--metrics-port"), ports, ("HTTP", "gRPC", "metrics"), strict=True
    ):
        parser.add_argument(option, type=int, default=default, help=f"{what} port (default: {default or free})")
    parser.add_argument("--log-verbose", type=int, default=0, help="tritonserver's --log-verbose (default: 0)")
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="where tritonserver's logs go (default: $TRITON_VISION_LOG_DIR, else ~/.local/state/triton-vision/logs)",
    )
    parser.add_argument(
        "--allow-model-control",
        action="store_true",
        help="let clients load/unload models (off by default; shared memory, logging and trace stay closed)",
    )
    parser.add_argument(
        "--cache-size",
        type=_byte_size,
        default=0,
        metavar="SIZE",
        help="memory of Triton's response cache, e.g. 256M: a repeated image is answered without decoding "
        "or the model, its post-processing still following its request (default: 0, no cache)",
    )


# -- serve ------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from triton_vision_serving.queues import QueueBounds
    from triton_vision_serving.serve import Serve, ServeSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s serve: %(message)s", stream=sys.stderr)
    settings = ServeSettings(
        _server_options(args),
        start_timeout_s=args.start_timeout,
        probe_interval_s=args.probe_interval,
        probe_timeout_s=args.probe_timeout,
        trim_above_bytes=int(args.trim_shm_above * 2**20),
        queue_bounds=QueueBounds(args.max_queue_size, args.queue_timeout_ms),
    )
    return Serve(settings).run()


# -- models -----------------------------------------------------------------------------------
def _existing_repository(path: Path, option: str = "--model-repository DIR"):
    from triton_vision_authoring.errors import RepositoryUnusableError
    from triton_vision_models.repository import ModelRepository

    if not path.is_dir():
        raise RepositoryUnusableError(
            f"model repository {path} does not exist (run from the project root, or pass {option})"
        )
    return ModelRepository.load(path)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n else "-"


def models_table(rows) -> list[str]:
    """``models status``: a line per ONNX model (model, kind, sha256, size, origin)."""
    table = [("model", "kind", "sha256", "size", "origin")]
    for row in rows:
        source = row.source
        origin = "run `triton-vision models prepare`" if not row.prepared else (source.origin if source else "-")
        if source is not None and source.arrived_sha256:
            origin += f" (that file's sha256 {source.arrived_sha256[:12]}: rewritten to serve it)"
        sha = source.sha256[:12] if source else "-"
        table.append((row.name, row.kind, sha, _size(row.size), origin))
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line[:4], widths, strict=True)) + "  " + line[4]
        for line in table
    ]


def _models_status(repository, *, as_json: bool) -> int:
    import json

    from triton_vision_authoring.models import prepared_models

    rows = prepared_models(repository)
    if as_json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    if not rows:
        print(f"{repository.path} has no ONNX models", file=sys.stderr)
        return 0
    for line in models_table(rows):
        print(line)
    for row in rows:
        if row.source is not None and row.source.is_stand_in:
            print(f"WARNING: {row.name} is a {row.source.describe()}", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from triton_vision_authoring import models as model_files
    from triton_vision_authoring.errors import RepositoryUnusableError
    from triton_vision_contract.errors import UsageError

    repository = _existing_repository(args.model_repository)
    if args.action == "status":
        return _models_status(repository, as_json=args.json)
    catalogue = model_files.CATALOGUE
    names = args.model or [key for key, entry in catalogue.items() if key == entry.name and entry.name in repository]
    if not names:
        onnx_models = repository.of_kind("onnxruntime")
        raise RepositoryUnusableError(
            f"model repository {repository.path} holds none of the models `models prepare` makes "
            f"({', '.join(dict.fromkeys(e.name for e in catalogue.values()))})"
            + (f"; its ONNX models: {', '.join(onnx_models)}" if onnx_models else "")
        )
    if args.from_path is not None and len(names) != 1:
        raise UsageError("--from needs exactly one --model")
    for name in names:
        entry = catalogue.get(name)
        if entry is None:
            raise UsageError(f"unknown model '{name}' (known: {', '.join(catalogue)})")
        if entry.name not in repository:
            raise RepositoryUnusableError(
                f"model repository {repository.path} has no model '{entry.name}' "
                f"(looked for {repository.path / entry.name / 'config.pbtxt'}); is --model-repository right?"
            )
        was_there = (model_files.version_dir(repository.path, entry.name) / model_files.MODEL_FILENAME).is_file()
        source = model_files.prepare(
            repository.path,
            entry,
            from_path=args.from_path,
            stand_in=args.stand_in,
            force=args.force,
            report=lambda message: print(message, file=sys.stderr),
        )
        line = f"{entry.name}: {model_files.describe(source)}"
        print(
            ("WARNING: " + line) if source.is_stand_in else line, file=sys.stderr if source.is_stand_in else sys.stdout
        )
        if entry.choice and (args.force or not was_there):  # said when this model was put in place
            print(f"note: {entry.choice}")
    return 0


# -- demo ------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    """Prepare models, serve them, answer photos, stop."""
    from triton_vision_serving.demo import run_demo
    from triton_vision_serving.ports import free_port

    for option in ("http_port", "grpc_port", "metrics_port"):
        if getattr(args, option) is None:  # free ports only where none was given
            setattr(args, option, free_port())
    return run_demo(_server_options(args), images=args.images, people=args.people, top_k=args.top_k)


# -- check and export-repo ---------------------------------------------------------------------
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

    from triton_vision_authoring.check import check_repository

    with warnings.catch_warnings(record=True):  # recorded, not shown (DALI forces its own filter)
        return check_repository(repository, models)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a model repository offline; exit 0 when it has no problems, 1 otherwise."""
    _existing_repository(args.repository, "its path: triton-vision check DIR")
    report = _quiet_check(args.repository)
    _print_report(report, as_json=args.json)
    return 0 if report.ok else 1


def cmd_export_repo(args: argparse.Namespace) -> int:
    """Copy the repository with every model renamed <prefix><name>, then check the copy."""
    from triton_vision_authoring.export_repo import export_repository
    from triton_vision_models.repository import ModelRepository

    _existing_repository(args.model_repository)
    exported = export_repository(
        args.model_repository, args.dest, prefix=args.prefix, models=args.models, force=args.force
    )
    for model in exported:
        print(f"{model.source} -> {args.dest / model.name}")
    report = _quiet_check(args.dest, [m.name for m in exported])
    _print_report(report, as_json=False)
    copied = ModelRepository.load(args.dest)
    ensembles = [m.name for m in exported if m.name in copied.ensembles]
    if args.prefix and ensembles:
        print(
            f"clients call the ensembles by their new names ({', '.join(ensembles)}): "
            f"triton-vision classify IMAGE --model-prefix {args.prefix}"
        )
    return 0 if report.ok else 1


# -- model-analyzer ------------------------------------------------------------------------------
def cmd_model_analyzer(args: argparse.Namespace) -> int:
    """Write the input data and Model Analyzer's config into --workdir, then run it (unless --config-only)."""
    import subprocess

    from triton_vision_authoring.errors import RuntimeMissingError
    from triton_vision_bench.model_analyzer import flattened_repository, write_model_analyzer_config
    from triton_vision_bench.perf import perf_analyzer_env, write_input_data

    workdir = args.workdir.resolve()
    _existing_repository(args.model_repository)
    input_data = write_input_data([Path(image) for image in args.images], workdir / "input_data.json")
    repository = flattened_repository(args.model_repository.resolve(), args.ensemble, workdir / "model_repository")
    config = write_model_analyzer_config(
        workdir / "model_analyzer.yaml",
        ensemble=args.ensemble,
        model_repository=repository,
        input_data=input_data,
        workdir=workdir,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        max_model_batch_size=args.max_model_batch_size,
        max_instance_count=args.max_instance_count,
        concurrency=args.concurrency,
    )
    env = perf_analyzer_env()
    command = [str(args.model_analyzer), "profile", "-f", str(config)]
    print(" ".join(command), flush=True)
    if args.config_only:
        return 0
    if not args.model_analyzer.is_file():
        raise RuntimeMissingError(f"{args.model_analyzer} is missing: make model-analyzer-env")
    return subprocess.call(command, env=env)


# -- registration ---------------------------------------------------------------------------
def _server_command(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Runs ``func`` if the server extra is installed; project errors become one line (exit 2 or 1)."""

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
        from triton_vision_contract.errors import TritonVisionError, exit_code

        try:
            return func(args)
        except TritonVisionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exit_code(exc)

    return run


def _parser(sub: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description)


def register_model_actions(actions: Any) -> None:
    """Adds ``prepare`` and ``status`` to the ``models`` command (the client defines it, with ``list``)."""
    for action, help_text, description in (
        (
            "prepare",
            "produce the ONNX files the repository serves",
            "Put each ONNX model's file in place (--from a local file, else a pinned download, else a "
            "clearly marked stand-in with random weights).",
        ),
        ("status", "show where each ONNX model's file came from", "A table of every ONNX model's file."),
    ):
        p = _parser(actions, action, help_text, description)
        p.add_argument("--model", action="append", help="model directory name (repeatable; default: all)")
        p.add_argument(
            "--from", dest="from_path", type=Path, default=None, help="import a local .onnx file (or a .pth)"
        )
        p.add_argument("--stand-in", action="store_true", help="random-weight stand-in with the same tensor contract")
        p.add_argument("--force", action="store_true", help="replace a model that is already prepared")
        p.add_argument("--json", action="store_true", help="status: one JSON list on stdout")
        _add_repository(p)
        p.set_defaults(func=_server_command(cmd_models))


def register(sub: Any) -> None:
    """Adds the server commands to the ``triton-vision`` sub-command parser ``sub``."""
    p = _parser(
        sub,
        "serve",
        "run the local tritonserver on model_repository/",
        "Run the real tritonserver on a model repository until Ctrl-C: dead model processes are reloaded, "
        "changed model files loaded, a dead tritonserver restarted (it gives up after 5 deaths within 300 s). "
        "Only inference, health, metadata, model configs and statistics are open to clients.",
    )
    _add_server_options(p, ports=DEFAULT_PORTS)
    p.add_argument(
        "--probe-interval",
        type=float,
        default=60.0,
        help="seconds between tiny-image probes of every ensemble; two failures reload its models; 0: off "
        "(default: %(default)s)",
    )
    p.add_argument("--probe-timeout", type=float, default=30.0, help="seconds a probe may take (default: %(default)s)")
    p.add_argument(
        "--max-queue-size",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="requests that may wait in each composing model's queue before more are refused at once (UNAVAILABLE); "
        "0: no bound (default: what each config says: 32 for classification's models, 8 for detection's and "
        "segmentation's)",
    )
    p.add_argument(
        "--queue-timeout-ms",
        type=non_negative_int,
        default=None,
        metavar="MS",
        help="a request that has waited this long in a composing model's queue is refused (UNAVAILABLE); "
        "0: no limit (default: what each config says: 2000 for classification's models, 30000 for detection's "
        "and segmentation's)",
    )
    p.add_argument(
        "--trim-shm-above",
        type=non_negative_float,
        default=DEFAULT_TRIM_ABOVE_BYTES / 2**20,
        metavar="MB",
        help="reload a model whose process's shared-memory pool grew above this many MB (a flood of big "
        "requests: the pool never shrinks by itself); 0: never (default: %(default)g)",
    )
    p.add_argument(
        "--start-timeout",
        type=float,
        default=240.0,
        help="seconds to wait for every model to load (default: %(default)s)",
    )
    add_ui_port(p)
    p.set_defaults(func=_server_command(with_ui(cmd_serve, lambda args: _server_options(args).grpc_url)))

    from triton_vision_bench.perf import add_parser as add_perf

    add_perf(sub, _server_command)

    p = _parser(
        sub,
        "check",
        "validate a model repository offline (exit 1 on any problem)",
        "Validate a model repository offline: configs, ensemble wiring, DALI pipelines, ONNX files, labels. "
        "A repository without an ensemble is a problem. Exit 0: no problem; 1: problems; 2: no such repository.",
    )
    p.add_argument("repository", nargs="?", type=Path, default=DEFAULT_REPOSITORY, help="(default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_server_command(cmd_check))

    p = _parser(
        sub,
        "export-repo",
        "copy the repository with every model renamed <prefix><name>",
        "Copy models (and what they need) into another repository, renamed <prefix><name>, then check the copy.",
    )
    p.add_argument("dest", type=Path, help="target model repository (created; may be an existing one)")
    p.add_argument("--prefix", default="", help="prepended to every model name, e.g. tv_")
    p.add_argument(
        "--models", nargs="+", default=None, help="models to export (default: all); what they need comes along"
    )
    p.add_argument("--force", action="store_true", help="replace models of the same name in DEST")
    _add_repository(p)
    p.set_defaults(func=_server_command(cmd_export_repo))

    _register_model_analyzer(sub)

    from triton_vision_bench import add_parser as add_bench
    from triton_vision_cli.add_model_command import register as add_model_command

    add_bench(sub, _server_command)
    add_model_command(sub, _server_command)

    p = _parser(
        sub,
        "demo",
        "prepare, serve, and answer photos, then stop",
        "Prepare the model files, start tritonserver on free ports, classify, segment and detect photos, stop.",
    )
    p.add_argument("images", nargs="*", help="photos to classify (default: scikit-image's chelsea, a cat)")
    p.add_argument(
        "--people",
        action="append",
        default=None,
        help="photos to segment and detect (repeatable; default: the images given, else scikit-image's astronaut)",
    )
    p.add_argument("--top-k", type=int, default=3, help="labels per photo (default: %(default)s)")
    _add_server_options(p, ports=(None, None, None))
    p.set_defaults(func=_server_command(cmd_demo))


def _register_model_analyzer(sub: Any) -> None:
    from triton_vision_bench.model_analyzer import DEFAULT_EXECUTABLE, DEFAULT_WORKDIR

    p = _parser(
        sub,
        "model-analyzer",
        "profile an ensemble with Triton Model Analyzer (make model-analyzer-env installs it)",
        "Write perf_analyzer's input data and Model Analyzer's config into --workdir, then run Model Analyzer's "
        "remote mode against `triton-vision serve --allow-model-control` on the given ports.",
    )
    p.add_argument("ensemble", help="an ensemble of the repository")
    p.add_argument("images", nargs="+", help="JPEG/PNG files perf_analyzer sends")
    _add_repository(p)
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="(default: %(default)s)")
    for option, default in zip(("--http-port", "--grpc-port", "--metrics-port"), DEFAULT_PORTS, strict=True):
        p.add_argument(option, type=int, default=default, help="the server's port (default: %(default)s)")
    p.add_argument("--max-model-batch-size", type=int, default=4, help="(default: %(default)s)")
    p.add_argument("--max-instance-count", type=int, default=2, help="(default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=None, help="pin every measurement's concurrency")
    p.add_argument("--model-analyzer", type=Path, default=DEFAULT_EXECUTABLE, help="(default: %(default)s)")
    p.add_argument("--config-only", action="store_true", help="write the files, do not run")
    p.set_defaults(func=_server_command(cmd_model_analyzer))
