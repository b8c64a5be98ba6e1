"""Starting the playground page from a command: ``triton-vision ui`` (:mod:`.cli`) and
``serve --ui-port`` (:func:`add_ui_port`, :func:`with_ui`). Nothing heavy is imported until the page
starts; without the ``ui`` extra it says what to install."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from triton_vision_contract.errors import USAGE_EXIT_CODE, UsageError

UI_MODULES = {"starlette": "starlette", "uvicorn": "uvicorn"}  # importable module: PyPI name


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
            return USAGE_EXIT_CODE
        try:
            announce(ui)
            return command(args)
        finally:
            ui.stop()

    return run
