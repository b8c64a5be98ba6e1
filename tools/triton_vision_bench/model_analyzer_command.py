"""``triton-vision model-analyzer ENSEMBLE IMAGE...``: Triton Model Analyzer against the local server
(:mod:`.model_analyzer`)."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from triton_vision_authoring.errors import RuntimeMissingError
from triton_vision_authoring.repository_option import add_repository, existing_repository
from triton_vision_bench.model_analyzer import (
    DEFAULT_EXECUTABLE,
    DEFAULT_WORKDIR,
    flattened_repository,
    write_model_analyzer_config,
)
from triton_vision_bench.perf import perf_analyzer_env, write_input_data
from triton_vision_serving.server_arguments import DEFAULT_PORTS


def run(args: argparse.Namespace) -> int:
    """Write the input data and Model Analyzer's config into --workdir, then run it (unless --config-only)."""
    workdir = args.workdir.resolve()
    existing_repository(args.model_repository)
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write perf_analyzer's input data and Model Analyzer's config into --workdir, then run Model Analyzer's "
        "remote mode against `triton-vision serve --allow-model-control` on the given ports."
    )
    parser.add_argument("ensemble", help="an ensemble of the repository")
    parser.add_argument("images", nargs="+", help="JPEG/PNG files perf_analyzer sends")
    add_repository(parser)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="(default: %(default)s)")
    for option, default in zip(("--http-port", "--grpc-port", "--metrics-port"), DEFAULT_PORTS, strict=True):
        parser.add_argument(option, type=int, default=default, help="the server's port (default: %(default)s)")
    parser.add_argument("--max-model-batch-size", type=int, default=4, help="(default: %(default)s)")
    parser.add_argument("--max-instance-count", type=int, default=2, help="(default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=None, help="pin every measurement's concurrency")
    parser.add_argument("--model-analyzer", type=Path, default=DEFAULT_EXECUTABLE, help="(default: %(default)s)")
    parser.add_argument("--config-only", action="store_true", help="write the files, do not run")
