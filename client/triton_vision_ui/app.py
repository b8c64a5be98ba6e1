"""The HTTP side: one static page and two JSON routes, on Starlette, served by uvicorn.

``GET /`` the page (HTML, JS and CSS from ``static/``, nothing from elsewhere);
``GET /api/ensembles`` what the server has; ``POST /api/infer?ensemble=NAME&<parameters>`` one
image's bytes as the body (``application/octet-stream``), refused above the ensemble's guard
limit before it is forwarded. Nothing is written to disk: bodies are read into memory up to the
limit, no further.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import AsyncIterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from triton_vision_client.errors import ClientError, ServerUnreachableError

from .playground import DEFAULTS, Limit, Playground, PlaygroundError, TooLargeError

LOG = logging.getLogger("triton_vision_ui")
STATIC = Path(__file__).resolve().parent / "static"
BODY_TYPE = "application/octet-stream"
LOOPBACK_NAMES = ("localhost",)
STOP_TIMEOUT_S = 10.0


class WrongBodyTypeError(PlaygroundError):
    status = 415


async def read_capped(chunks: AsyncIterator[bytes], declared: str | None, limit: Limit) -> bytes:
    """The body, refused (:class:`TooLargeError`) as soon as it declares or reaches more than the limit."""
    if declared is not None and declared.isdigit() and int(declared) > limit.max_bytes:
        raise TooLargeError(limit.refusal(int(declared)))
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit.max_bytes:
            raise TooLargeError(f"more than {limit.max_bytes} bytes ({limit.source}): not sent")
        parts.append(chunk)
    return b"".join(parts)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(playground: Playground, *, host: str = "127.0.0.1") -> Any:
    """The Starlette app over ``playground``. Bound to a loopback address, it answers only requests
    addressed to a loopback name (no DNS rebinding from a web page elsewhere)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    def failure(exc: Exception, **extra: Any) -> JSONResponse:
        """The error as JSON the page shows: the server's or the UI's words, never a traceback."""
        if isinstance(exc, ServerUnreachableError):
            status, kind, message = 502, "unreachable", str(exc)
        elif isinstance(exc, ClientError):
            status, kind, message = getattr(exc, "status", 502), type(exc).__name__, str(exc)
        else:  # a fault of the UI itself: logged in full, named on the page
            LOG.exception("the UI failed a request")
            status, kind, message = 500, "internal", f"the UI failed: {type(exc).__name__}: {exc}"
        return JSONResponse({"ok": False, "error": message, "kind": kind, **extra}, status_code=status)

    async def page(_request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    async def overview(_request: Request) -> JSONResponse:
        try:
            return JSONResponse({"ok": True, **await run_in_threadpool(playground.overview)})
        except Exception as exc:  # noqa: BLE001 - every failure is an answer the page shows
            return failure(exc, defaults=DEFAULTS)

    async def infer(request: Request) -> JSONResponse:
        try:
            name = request.query_params.get("ensemble", "")
            if request.headers.get("content-type", "").split(";")[0].strip() != BODY_TYPE:
                raise WrongBodyTypeError(f"send the image's bytes as the body, with Content-Type {BODY_TYPE}")
            limit = await run_in_threadpool(playground.upload_limit, name)
            data = await read_capped(request.stream(), request.headers.get("content-length"), limit)
            answer = await run_in_threadpool(playground.answer, name, data, dict(request.query_params))
        except Exception as exc:  # noqa: BLE001 - every failure is an answer the page shows
            return failure(exc)
        return JSONResponse({"ok": True, **answer})

    middleware = []
    if is_loopback(host):
        allowed = sorted({host.strip("[]"), "127.0.0.1", "::1", *LOOPBACK_NAMES})
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed))
    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/ensembles", overview),
            Route("/api/infer", infer, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=middleware,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: any free port); OSError when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class UIServer:
    """uvicorn serving the app on an already bound socket, in a thread of its own."""

    def __init__(self, playground: Playground, sock: socket.socket, host: str) -> None:
        import uvicorn

        self.playground = playground
        self.socket = sock
        config = uvicorn.Config(create_app(playground, host=host), log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def start(self) -> UIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=STOP_TIMEOUT_S)
        self.socket.close()
        self.playground.close()
