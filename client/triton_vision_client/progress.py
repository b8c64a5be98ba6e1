"""A progress line for terminals and the end-of-job summary (stderr; pure standard library)."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

REDRAW_S = 0.1  # at most ten redraws a second
FAILURE_EXAMPLES = 5
MIN_RATE_S = 0.05  # a job shorter than this gets no images/s (it would be noise)


def count(number: int, noun: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def duration(seconds: float) -> str:
    """0:07, 1:02:03."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """``[#####.....]  120/500  24%  85.3 img/s  ETA 0:04  2 failed`` redrawn in place on ``stream``.

    Only when ``enabled`` (the caller passes ``stream.isatty()``); otherwise every method is a
    no-op, so nothing but the summary reaches a log file or a pipe.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        enabled: bool,
        total: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream, self.enabled, self.total, self.clock = stream, enabled, total, clock
        self.start = clock()
        self.done = 0  # images answered or failed in this run
        self.skipped = 0  # images skipped (already in the output file)
        self.failed = 0
        self._last_draw = float("-inf")
        self._width = 0

    def skip(self) -> None:
        self.skipped += 1
        self._maybe_draw()

    def update(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        self._maybe_draw()

    def _maybe_draw(self) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if now - self._last_draw >= REDRAW_S:
            self._last_draw = now
            self.draw(now)

    def line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        parts = []
        position = self.done + self.skipped
        if self.total:
            fraction = min(position / self.total, 1.0)
            filled = int(fraction * 20)
            parts.append(f"[{'#' * filled}{'.' * (20 - filled)}] {position}/{self.total} {fraction:4.0%}")
        else:
            parts.append(count(position, "image"))
        parts.append(f"{rate:.1f} img/s")
        if self.total and rate > 0:
            parts.append(f"ETA {duration(max(self.total - position, 0) / rate)}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return "  ".join(parts)

    def draw(self, now: float | None = None) -> None:
        text = self.line(self.clock() if now is None else now)
        columns = shutil.get_terminal_size((100, 20)).columns
        text = text[: max(columns - 1, 10)]
        self.stream.write("\r" + text + " " * max(self._width - len(text), 0))
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


@dataclass
class Summary:
    """What a job did: counts by outcome and failure reason, time, rate, a few failures, and,
    when it was interrupted, how many images were not answered."""

    verb: str  # "classified"
    ok: int = 0
    skipped: int = 0
    skipped_not_images: int = 0
    skipped_subfolders: int = 0  # of folders given without -r
    failures: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    given: int | None = None  # images the inputs name (set when the job stopped early and they were counted)
    sent: int | None = None  # images taken from the inputs (sent, or failed before sending)
    retries: int = 0  # requests sent again after the server called them temporarily unavailable
    retry_reason: str = ""  # the first such answer
    notes: list[str] = field(default_factory=list)  # said after the counts (outputs renamed, ...)

    def retried(self, message: str) -> None:
        self.retries += 1
        self.retry_reason = self.retry_reason or message

    def add(self, path: str, error: str | None, reason: str | None) -> None:
        if error is None:
            self.ok += 1
            return
        self.failures[reason or "error"] += 1
        if len(self.examples) < FAILURE_EXAMPLES:
            self.examples.append(f"  {path}: {error}")

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def images(self) -> int:
        return self.ok + self.failed

    def _unanswered(self) -> str:
        """``8 not answered: 2 sent, 6 not sent`` for an interrupted job ('' when all were)."""
        if self.sent is None:
            return ""
        waiting = max(self.sent - self.images, 0)
        if self.given is None:
            return f"; {waiting} sent and not answered, the rest of the inputs not sent"
        unsent = max(self.given - self.skipped - self.sent, 0)
        if not waiting + unsent:
            return ""
        return f"; {waiting + unsent} not answered: {waiting} sent, {unsent} not sent"

    def lines(self, elapsed_s: float, *, stopped: str | None = None) -> list[str]:
        total = self.images
        if self.sent is not None and self.given is not None:
            total = max(self.given - self.skipped, total)
        head = f"{self.verb} {self.ok} of {count(total, 'image')} in {duration(elapsed_s)} ({elapsed_s:.1f} s"
        if self.images and elapsed_s >= MIN_RATE_S:
            rate = self.images / elapsed_s  # below one a second: seconds per image say more
            head += f", {rate:.1f} images/s" if rate >= 1 else f", {elapsed_s / self.images:.1f} s per image"
        head += ")"
        if self.failed:
            reasons = ", ".join(f"{number} {reason}" for reason, number in self.failures.most_common())
            head += f"; {self.failed} failed: {reasons}"
        head += self._unanswered()
        lines = [] if stopped and not self.images and self.sent is None else [head]
        if self.retries:
            lines.append(
                f"sent {count(self.retries, 'request')} again after the server said it was temporarily "
                f"unavailable (first: {self.retry_reason})"
            )
        if self.skipped:
            lines.append(f"skipped {self.skipped} already in the output file (--resume)")
        if self.skipped_not_images:
            noun = "file" if self.skipped_not_images == 1 else "files"
            verb = "is not an image" if self.skipped_not_images == 1 else "are not images"
            lines.append(f"ignored {self.skipped_not_images} {noun} in the folders that {verb}")
        if self.skipped_subfolders:
            its = "its" if self.skipped_subfolders == 1 else "their"
            lines.append(f"skipped {count(self.skipped_subfolders, 'subfolder')} (give -r to take {its} images too)")
        lines.extend(self.notes)
        if self.examples:
            lines.append("failures" + (" (first few)" if self.failed > len(self.examples) else "") + ":")
            lines.extend(self.examples)
        if stopped:
            lines.append(stopped)
        return lines
