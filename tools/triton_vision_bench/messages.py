"""What the bench tells its user: its errors (a run that cannot go on, a request it cannot honour)
and its progress lines on stderr."""

from __future__ import annotations

import sys

from triton_vision_contract.errors import TritonVisionError, UsageError


class BenchError(TritonVisionError):
    """The benchmark cannot run or a path failed entirely (exit 1)."""


class BenchUsageError(BenchError, UsageError):
    """What was asked cannot be measured: an unknown ensemble, a bad option (exit 2)."""


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
