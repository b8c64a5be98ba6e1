"""``triton-vision perf``: perf_analyzer against a running server, fed real encoded images
(:mod:`.perf`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from triton_vision_bench.perf import (
    CONCURRENCY,
    MAX_TRIALS,
    MEASUREMENT_MS,
    STABILITY_PERCENTAGE,
    PerfUsageError,
    perf_analyzer_data_command,
    perf_analyzer_env,
)
from triton_vision_client.connection import resolve_url
from triton_vision_client.folderjob import add_connection, check_protocol
from triton_vision_contract.errors import UsageError
from triton_vision_models import tensors as t

UNSTABLE = "Failed to obtain stable measurement"  # perf_analyzer's words when the windows never agreed


def run(args: argparse.Namespace) -> int:
    """perf_analyzer against a running server, fed real encoded images (a JSON input-data file)."""
    try:
        check_protocol(args.protocol)
        url, _ = resolve_url(args.url, args.protocol)  # --url, else $TRITON_VISION_URL, else the default
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory() as scratch:
            data_file = args.input_data_out or Path(scratch) / "input_data.json"
            command = perf_analyzer_data_command(
                [Path(image) for image in args.images],
                data_file,
                model=args.model,
                model_prefix=args.model_prefix,
                url=url,
                protocol=args.protocol,
                batch_size=args.batch_size,
                concurrency=args.concurrency,
                measurement_ms=args.measurement_ms,
                stability_percentage=args.stability_percentage,
                max_trials=args.max_trials,
                request_count=args.request_count,
            )
            print(" ".join(command), flush=True)
            return run_perf_analyzer(command)
    except PerfUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run_perf_analyzer(command: list[str]) -> int:
    """Runs perf_analyzer, its output passed through; its exit code, with a hint when it found
    no stable measurement."""
    with subprocess.Popen(
        command, env=perf_analyzer_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        unstable = False
        for line in process.stdout or ():
            print(line, end="", flush=True)
            unstable = unstable or UNSTABLE in line
    if process.returncode != 0 and unstable:
        print(
            "error: perf_analyzer found no stable measurement (the machine's load moved):"
            " raise --stability-percentage or --measurement-ms, or bound the run with --request-count",
            file=sys.stderr,
        )
    return process.returncode


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Run perf_analyzer (from the tritonclient wheel) against an ensemble of a running server, its "
        "requests cycling through real JPEG/PNG files; its output passes through."
    )
    p.add_argument("images", nargs="+", help="JPEG/PNG files; requests cycle through them")
    p.add_argument("--model", default=t.CLASSIFICATION, help="the ensemble (--model-prefix is put in front)")
    p.add_argument("--batch-size", type=int, default=1, help="images per request (rows zero-padded to the longest)")
    p.add_argument(
        "--concurrency",
        default=None,
        help=f"perf_analyzer --concurrency-range start[:end[:step]] (default {CONCURRENCY}; 1 with --request-count)",
    )
    p.add_argument("--measurement-ms", type=int, default=MEASUREMENT_MS, help="window length (default %(default)s)")
    p.add_argument(
        "--stability-percentage",
        type=int,
        default=STABILITY_PERCENTAGE,
        help="the last 3 windows' throughput and latency within this %% (default %(default)s; perf_analyzer's: 10)",
    )
    p.add_argument(
        "--max-trials", type=int, default=MAX_TRIALS, help="windows per level before giving up (default %(default)s)"
    )
    p.add_argument(
        "--request-count", type=int, default=None, help="send this many requests at one level, no stability windows"
    )
    p.add_argument("--input-data-out", type=Path, default=None, help="keep perf_analyzer's input-data JSON here")
    add_connection(p)
