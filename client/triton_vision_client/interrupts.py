"""Ctrl-C held back while a request is being handed to the transport.

Python raises ``KeyboardInterrupt`` in the main thread at whatever line it runs. Raised inside
gRPC's ``async_infer`` (which takes the channel's internal locks), it left a lock held, and the
job's ``close()`` then waited for it forever (a folder job that did not stop on Ctrl-C). So the
job sends its requests inside :func:`held`: a Ctrl-C that arrives there is raised as soon as the
request has been handed over, outside the library.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_pending = False


def _deferring_handler(signum, frame) -> None:  # noqa: ANN001 - signal's handler signature
    global _pending
    if _depth:
        _pending = True
        return
    raise KeyboardInterrupt


@contextmanager
def held() -> Iterator[None]:
    """A section in which Ctrl-C waits for its end (main thread, Python's own SIGINT handler only)."""
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler and previous is not _deferring_handler:
        yield  # SIGINT ignored or handled by the program: leave it alone
        return
    signal.signal(signal.SIGINT, _deferring_handler)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth:
            signal.signal(signal.SIGINT, previous)
            if _pending:
                _pending = False
                raise KeyboardInterrupt
