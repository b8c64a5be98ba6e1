"""``triton-vision ui``: the playground page on its own, forwarding to a running server."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import triton_vision_contract as contract
from triton_vision_contract.errors import USAGE_EXIT_CODE, UsageError

from .launch import announce, start_ui

DEFAULT_PORT = 8080


def run(args: argparse.Namespace) -> int:
    from triton_vision_client.errors import ServerUnreachableError

    try:
        ui = start_ui(args.url, args.protocol, args.host, args.port, args.model_prefix)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_EXIT_CODE
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        announce(ui)
        try:
            ui.playground.check_live()
        except ServerUnreachableError as exc:
            print(f"warning: {exc} The page says so until one answers.", file=sys.stderr, flush=True)
        print("Ctrl-C stops it.", flush=True)
        stop.wait()
    finally:
        ui.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", flush=True)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    from triton_vision_client.folderjob import add_connection

    p.description = (
        "Serve a web page that lists the server's ensembles and shows, for the images you drop, "
        "the top-k labels, the boxes drawn, the mask over the photo, and where the time went."
    )
    add_connection(p)
    p.add_argument(
        "--host", default=contract.DEFAULT_HOST, help=f"address the page binds (default {contract.DEFAULT_HOST})"
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port of the page (default {DEFAULT_PORT}; 0: any)")
