"""``triton-vision serve``: tritonserver on a model repository, kept healthy (:mod:`.serve`)."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from triton_vision_contract.errors import UsageError
from triton_vision_serving.memory import DEFAULT_TRIM_ABOVE_BYTES
from triton_vision_serving.queues import QueueBounds
from triton_vision_serving.serve import Serve, ServeSettings
from triton_vision_serving.server_arguments import DEFAULT_PORTS, add_server_options, server_options
from triton_vision_serving.tracing import DEFAULT_ENDPOINT, TraceSettings, traces_url
from triton_vision_ui.launch import add_ui_port, with_ui

DESCRIPTION = (
    "Run the real tritonserver on a model repository until Ctrl-C: dead model processes are reloaded, "
    "changed model files loaded, a dead tritonserver restarted (it gives up after 5 deaths within 300 s). "
    "Only inference, health, metadata, model configs and statistics are open to clients."
)


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


# -- serve ------------------------------------------------------------------------------------
def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s serve: %(message)s", stream=sys.stderr)
    settings = ServeSettings(
        replace(server_options(args), trace=trace_settings(args)),
        start_timeout_s=args.start_timeout,
        probe_interval_s=args.probe_interval,
        probe_timeout_s=args.probe_timeout,
        trim_above_bytes=int(args.trim_shm_above * 2**20),
        queue_bounds=QueueBounds(args.max_queue_size, args.queue_timeout_ms),
    )
    return Serve(settings).run()


def trace_settings(args: argparse.Namespace) -> TraceSettings | None:
    if args.trace == "off":
        if args.trace_endpoint is not None or args.trace_rate is not None:
            raise UsageError("--trace-endpoint and --trace-rate need --trace otel")
        return None
    settings = TraceSettings(args.trace_endpoint or DEFAULT_ENDPOINT, args.trace_rate or 1)
    traces_url(settings.endpoint)  # refused here, before anything starts
    return settings


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


run = with_ui(serve, lambda args: server_options(args).grpc_url)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    add_server_options(parser, ports=DEFAULT_PORTS)
    parser.add_argument(
        "--probe-interval",
        type=float,
        default=60.0,
        help="seconds between tiny-image probes of every ensemble; two failures reload its models; 0: off "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--probe-timeout", type=float, default=30.0, help="seconds a probe may take (default: %(default)s)"
    )
    parser.add_argument(
        "--max-queue-size",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="requests that may wait in each composing model's queue before more are refused at once (UNAVAILABLE); "
        "0: no bound (default: what each config says: 32 for classification's models, 8 for detection's and "
        "segmentation's)",
    )
    parser.add_argument(
        "--queue-timeout-ms",
        type=non_negative_int,
        default=None,
        metavar="MS",
        help="a request that has waited this long in a composing model's queue is refused (UNAVAILABLE); "
        "0: no limit (default: what each config says: 2000 for classification's models, 30000 for detection's "
        "and segmentation's)",
    )
    parser.add_argument(
        "--trim-shm-above",
        type=non_negative_float,
        default=DEFAULT_TRIM_ABOVE_BYTES / 2**20,
        metavar="MB",
        help="reload a model whose process's shared-memory pool grew above this many MB (a flood of big "
        "requests: the pool never shrinks by itself); 0: never (default: %(default)g)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=240.0,
        help="seconds to wait for every model to load (default: %(default)s)",
    )
    parser.add_argument(
        "--trace",
        choices=("off", "otel"),
        default="off",
        help="otel: tritonserver sends an OpenTelemetry trace per sampled request (an ensemble's steps nested "
        "inside) over OTLP/HTTP to --trace-endpoint (default: off)",
    )
    parser.add_argument(
        "--trace-endpoint",
        default=None,
        metavar="URL",
        help=f"a collector's OTLP/HTTP receiver, e.g. http://collector:4318 (/v1/traces is added when the URL has "
        f"no path) (default with --trace otel: {DEFAULT_ENDPOINT})",
    )
    parser.add_argument(
        "--trace-rate",
        type=positive_int,
        default=None,
        metavar="N",
        help="trace every N-th request (default with --trace otel: 1, every request)",
    )
    add_ui_port(parser)
