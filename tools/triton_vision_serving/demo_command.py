"""``triton-vision demo``: prepare the model files, serve them, answer photos, stop (:mod:`.demo`)."""

from __future__ import annotations

import argparse

from triton_vision_authoring.repository_option import existing_repository
from triton_vision_serving import demo
from triton_vision_serving.ports import free_port
from triton_vision_serving.server_arguments import add_server_options, server_options


def run(args: argparse.Namespace) -> int:
    existing_repository(args.model_repository)
    for option in ("http_port", "grpc_port", "metrics_port"):
        if getattr(args, option) is None:  # free ports only where none was given
            setattr(args, option, free_port())
    return demo.run_demo(server_options(args), images=args.images, people=args.people, top_k=args.top_k)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Prepare the model files, start tritonserver on free ports, classify, segment and detect photos, stop."
    )
    parser.add_argument("images", nargs="*", help="photos to classify (default: scikit-image's chelsea, a cat)")
    parser.add_argument(
        "--people",
        action="append",
        default=None,
        help="photos to segment and detect (repeatable; default: the images given, else scikit-image's astronaut)",
    )
    parser.add_argument("--top-k", type=int, default=3, help="labels per photo (default: %(default)s)")
    add_server_options(parser, ports=(None, None, None))
