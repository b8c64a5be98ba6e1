"""``triton-vision ui`` and ``serve --ui-port``: the playground page, from the command line.

:func:`register` is this package's ``triton_vision.commands`` entry point. The server's ``serve``
command calls :func:`add_ui_port` and wraps itself in :func:`with_ui`. Nothing heavy is imported
until a command runs; without the ``ui`` extra the commands say what to install.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import triton_vision_contract as contract
from triton_vision_contract.errors import UsageError

DEFAULT_PORT = 8080
UI_MODULES = {"starlette": "starlette", "uvicorn": "uvicorn"}  # importable module: PyPI name
EXIT_USAGE = 2


def missing_ui_packages() -> list[str]:
    return [package for module, package in UI_MODULES.items() if importlib.util.find_spec(module) is None]


def start_ui(url: str | None, protocol: str, host: str, port: int, model_prefix: str = "") -> Any:
    """The page on ``host``:``port``, forwarding to the Triton at ``url``; started (a thread).

    Raises :class:`UsageError` when the ``ui`` extra is missing or the port is taken.
    """
    missing = missing_ui_packages()
    if missing:
        raise UsageError(f"the UI needs the ui extra (missing: {', '.join(missing)}): pip install 'triton-vision[ui]'")
    from .app import UIServer, bind
    from .playground import Playground

    try:
        sock = bind(host, port)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): pass another --ui-port/--port"
        ) from None
    return UIServer(Playground(url, protocol, model_prefix=model_prefix), sock, host).start()


def announce(ui: Any) -> None:
    playground = ui.playground
    print(f"UI: {ui.url} (Triton at {playground.url} over {playground.protocol})", flush=True)


def cmd_ui(args: argparse.Namespace) -> int:
    from triton_vision_client.errors import ServerUnreachableError

    try:
        ui = start_ui(args.url, args.protocol, args.host, args.port, args.model_prefix)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
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


def add_ui_port(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ui-port",
        type=int,
        default=None,
        help="also serve the browser playground on this port (the host of --host; needs the ui extra)",
    )


def with_ui(
    command: Callable[[argparse.Namespace], int], grpc_url: Callable[[argparse.Namespace], str]
) -> Callable[[argparse.Namespace], int]:
    """``command`` with the page started first when ``--ui-port`` is given, stopped after it.

    The page comes up at once and says the server cannot be reached until tritonserver has started.
    """

    def run(args: argparse.Namespace) -> int:
        if getattr(args, "ui_port", None) is None:
            return command(args)
        try:
            ui = start_ui(grpc_url(args), "grpc", args.host, args.ui_port)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        try:
            announce(ui)
            return command(args)
        finally:
            ui.stop()

    return run


def register(sub: Any) -> None:
    """Adds ``ui`` to the ``triton-vision`` sub-command parser ``sub``."""
    from triton_vision_client.cli import add_connection

    p = sub.add_parser(
        "ui",
        help="a browser playground: drop images, see each ensemble's answer drawn",
        description=(
            "Serve a web page that lists the server's ensembles and shows, for the images you drop, "
            "the top-k labels, the boxes drawn, the mask over the photo, and where the time went."
        ),
    )
    add_connection(p)
    p.add_argument(
        "--host", default=contract.DEFAULT_HOST, help=f"address the page binds (default {contract.DEFAULT_HOST})"
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port of the page (default {DEFAULT_PORT}; 0: any)")
    p.set_defaults(func=cmd_ui)
