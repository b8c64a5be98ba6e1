"""Whether the machine's CPUs were contended lately, from Linux's pressure stall information.

``/proc/pressure/cpu`` ("some" line, ``total=``) counts the microseconds during which at least one
runnable thread waited for a CPU. Its growth over a window, as a share of the window, tells a
quiet machine from a busy one at once (the load average is a minute's mean): measured while
serving classification on 2 cores, the share between one model's executions was 0.04-0.16 (p10-p90)
with one request at a time and 0.35-0.99 with four (docs/performance.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

PRESSURE = Path("/proc/pressure/cpu")
CALM_BELOW = 0.2  # share of a window with a thread waiting for a CPU, below which the CPUs are calm


def stalled_us(path: Path = PRESSURE) -> int | None:
    """The "some" stall total in microseconds; None where the kernel has no pressure information."""
    try:
        first = path.read_text().split("\n", 1)[0]
        return int(first.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


class CpuPressure:
    """``calm()``: was the share of time since the previous call with a thread waiting for a CPU
    below ``calm_below``? The first call answers calm; without pressure information, never calm."""

    def __init__(
        self,
        path: Path = PRESSURE,
        calm_below: float = CALM_BELOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.calm_below = calm_below
        self.clock = clock
        self.previous: tuple[float, int] | None = None

    def calm(self) -> bool:
        now, stalled = self.clock(), stalled_us(self.path)
        if stalled is None:
            self.previous = None
            return False
        previous, self.previous = self.previous, (now, stalled)
        if previous is None or now <= previous[0]:
            return True
        return (stalled - previous[1]) / 1e6 / (now - previous[0]) < self.calm_below
