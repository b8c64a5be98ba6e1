"""The options of a local tritonserver on the command line (``serve``, ``demo``) and the
:class:`~triton_vision_serving.server_config.ServerOptions` they make."""

from __future__ import annotations

import argparse
from pathlib import Path

import triton_vision_contract as contract
from triton_vision_authoring.repository_option import add_repository
from triton_vision_serving.server_config import ServerOptions, parse_size

DEFAULT_PORTS = (contract.DEFAULT_HTTP_PORT, contract.DEFAULT_GRPC_PORT, contract.DEFAULT_METRICS_PORT)


def _byte_size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_server_options(parser: argparse.ArgumentParser, *, ports: tuple[int | None, ...]) -> None:
    add_repository(parser)
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
    parser.add_argument(
        "--separate-steps",
        action="store_true",
        help="serve each step of an ensemble as its own model process, as Triton's ensemble scheduler runs "
        "them (default: each ensemble's steps run in one process, fused: fewer copies, one queue; "
        "docs/performance.md)",
    )


def server_options(args: argparse.Namespace) -> ServerOptions:
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
        fuse=not args.separate_steps,
    )
