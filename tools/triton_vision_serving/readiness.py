"""When a starting tritonserver has settled (no model still loading) and is ready, and why a
model that is not ready is down.

Every wait is bounded by its timeout, ends as soon as tritonserver exits (naming its exit and the
log's cause), and as soon as ``should_stop()`` says so (``serve``'s Ctrl-C during start-up).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from triton_vision_models.repository import ModelRepository
from triton_vision_serving.admin import ModelState
from triton_vision_serving.errors import AdminRequestError, ServerFailedError, StopRequested

if TYPE_CHECKING:
    from triton_vision_serving.runtime import LocalTritonServer

POLL_S = 0.25
READY_AFTER_SETTLED_S = 30.0


def _never() -> bool:
    return False


def _step(server: LocalTritonServer, should_stop: Callable[[], bool], what: str) -> None:
    if should_stop():
        raise StopRequested(f"stopped while waiting for {what}")
    server.check_running(what)


def wait_settled(
    server: LocalTritonServer, timeout: float, should_stop: Callable[[], bool] = _never
) -> list[ModelState]:
    """Wait until tritonserver is live and no model is still loading; the repository index."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _step(server, should_stop, "the models to load")
        if server.admin.is_live():
            try:
                index = server.admin.repository_index()
            except AdminRequestError:
                index = []
            if index and not any(m.state in ("LOADING", "UNLOADING") for m in index):
                return explain(index, server.options.model_repository)
        time.sleep(POLL_S)
    raise ServerFailedError(
        f"tritonserver's models had not loaded within {timeout:.0f} s (--start-timeout); its log: {server.log_path}"
        f"\n{server.log_tail()}"
    )


def explain(index: list[ModelState], repository: Path) -> list[ModelState]:
    """Give a reason to models Triton never tried to load (an ensemble whose step failed)."""
    down = {m.name for m in index if not m.ready}
    reader = ModelRepository.load(repository)
    explained = []
    for m in index:
        if not m.ready and not m.reason:
            failed = [step for step in reader.steps(m.name) if step in down]
            reason = f"not loaded: it needs {', '.join(failed)}, which failed to load" if failed else "not loaded"
            m = ModelState(m.name, m.state or "UNAVAILABLE", reason)
        explained.append(m)
    return explained


def wait_ready(server: LocalTritonServer, timeout: float, should_stop: Callable[[], bool] = _never) -> None:
    """Every model loaded and the server ready; names the models that failed to load."""
    index = wait_settled(server, timeout, should_stop)
    down = [m for m in index if not m.ready]
    if down:
        raise ServerFailedError("models failed to load: " + "; ".join(f"{m.name}: {m.reason or m.state}" for m in down))
    deadline = time.monotonic() + READY_AFTER_SETTLED_S
    while not server.admin.is_ready():
        _step(server, should_stop, "readiness")
        if time.monotonic() > deadline:
            raise ServerFailedError(f"tritonserver did not report ready:\n{server.log_tail()}")
        time.sleep(POLL_S)
