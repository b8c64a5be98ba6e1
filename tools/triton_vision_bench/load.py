"""The load generator: ``concurrency`` asyncio workers sending back to back, one measurement window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from triton_vision_bench.messages import BenchError

GIVE_UP_AFTER_ERRORS = 20  # failures before the window opened: nothing will succeed
GIVE_UP_SLACK_S = 60  # past warm-up + max_point_s with no window open: nothing completes


@dataclass
class PointResult:
    concurrency: int
    latencies_s: list[float]
    window_s: float
    errors: int
    first_error: str
    client_cpu_s: float
    latencies_by_kind: dict[str, list[float]] = field(default_factory=dict)  # when send() names a kind


async def drive(
    send: Callable[[int], Awaitable[str | None]],
    concurrency: int,
    *,
    warmup_s: float,
    duration_s: float,
    min_requests: int,
    max_point_s: float,
    on_window: Callable[[str], Awaitable[None]] | None = None,
) -> PointResult:
    """``concurrency`` workers call ``send(i)`` back to back (i counts requests per worker); a ``send``
    that returns a kind (e.g. "repeat") has its latencies kept by kind as well.

    The window opens at the first completion after ``warmup_s`` and closes at the first completion
    once ``duration_s`` has passed and ``min_requests`` completed (or ``max_point_s`` after it
    opened). Throughput is completions after the opening one / window length: the exact
    completion rate, whatever the request duration.
    """
    start = time.perf_counter()
    state: dict[str, Any] = {"open": None, "close": None, "count": 0, "errors": 0, "first_error": ""}
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}
    cpu = {}

    async def completed(now: float, latency: float, kind: str | None) -> None:
        if state["close"] is not None:
            return
        if state["open"] is None:
            if now - start >= warmup_s:
                state["open"] = now
                cpu["start"] = time.process_time()
                if on_window:
                    await on_window("open")
            return
        state["count"] += 1
        latencies.append(latency)
        if kind is not None:
            by_kind.setdefault(kind, []).append(latency)
        elapsed = now - state["open"]
        if (elapsed >= duration_s and state["count"] >= min_requests) or elapsed >= max_point_s:
            state["close"] = now
            cpu["stop"] = time.process_time()
            if on_window:
                await on_window("close")

    async def worker(slot: int) -> None:
        index = slot
        while state["close"] is None:
            if time.perf_counter() - start > warmup_s + max_point_s + GIVE_UP_SLACK_S and state["open"] is None:
                break  # nothing completes: give up
            sent = time.perf_counter()
            try:
                kind = await send(index)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the sweep goes on
                state["errors"] += 1
                state["first_error"] = state["first_error"] or f"{type(exc).__name__}: {exc}"[:400]
                if state["errors"] > GIVE_UP_AFTER_ERRORS and state["open"] is None:
                    break
                continue
            now = time.perf_counter()
            await completed(now, now - sent, kind)
            index += concurrency

    await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
    if state["open"] is None or state["close"] is None:
        raise BenchError(
            f"no measurement at concurrency {concurrency}: {state['errors']} errors ({state['first_error'] or 'none'})"
        )
    return PointResult(
        concurrency,
        latencies,
        state["close"] - state["open"],
        state["errors"],
        state["first_error"],
        cpu["stop"] - cpu["start"],
        by_kind,
    )
