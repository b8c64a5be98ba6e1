"""Many images, many requests in flight: the one engine behind every call of the client.

Transport-free: :func:`run_requests` takes a ``submit`` function that sends one request and
later calls back with its outputs or its error (from any thread). The engine, a generator running
in the caller's thread, keeps up to ``concurrency`` requests in flight (or waiting to be sent
again), reads images from disk only as requests go out (so memory is bounded by
``(concurrency + 1) x batch`` images whatever the number of inputs), packs up to ``batch``
images per request, and yields one :class:`ImageResult` per image as its request completes.

Two kinds of failure are handled here:

- a request the server refuses as a whole (one bad image fails a batch) is sent again image by
  image, so only the bad image fails (``resend_refused``; the list calls keep the server's
  answer for the whole request instead, as a single request would get);
- a request the server calls temporarily unavailable (a model loading or being healed, a full
  queue) is sent again after a back-off that doubles from ``RetryPolicy.first_s`` up to
  ``max_s``, with jitter, while less than ``budget_s`` has passed since its first such failure;
  then its images fail with reason ``unavailable``. A waiting request counts against
  ``concurrency``, so an unavailable server pauses the job instead of filling memory.
"""

from __future__ import annotations

import heapq
import itertools
import os
import queue
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from .errors import ClientError
from .inputs import ImageSource
from .interrupts import held

# Why an image failed (the summary counts failures by these).
NOT_FOUND = "not found"
UNREADABLE = "unreadable"
EMPTY = "empty"
TOO_LARGE = "too large"
REFUSED = "refused"  # the server said the image (or a parameter) is invalid: its message says why
TIMED_OUT = "timed out"
SERVER_ERROR = "server error"
UNAVAILABLE = "unavailable"  # the server said "try later" (model loading/healing, queue full) until the budget ran out
OUTPUT_FAILED = "output not written"

# Larger than any file the server's image_guard accepts by default (max_bytes 32 MiB): bigger
# files are not read into memory at all.
MAX_FILE_BYTES = 64 * 1024 * 1024
# A request's padded batch (images x longest file) stays under this; a larger file travels alone.
MAX_REQUEST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, eq=False)
class ImageResult:
    """One image's outcome: ``answer`` (Classification, Detections, Segmentation) or ``error``."""

    source: ImageSource
    answer: Any = None
    error: str | None = None
    reason: str | None = None  # one of the reasons above when ``error`` is set
    data: bytes | None = field(default=None, repr=False)  # the encoded file, when asked to keep it

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def path(self) -> str:
        return self.source.name


class RequestError(ClientError):
    """One request failed for a reason that concerns its images (not the whole job); with reason
    :data:`UNAVAILABLE` the server said the failure is temporary, and the engine sends it again."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message, self.reason = message, reason


def as_source(item: ImageSource | str | os.PathLike) -> ImageSource:
    if isinstance(item, ImageSource):
        return item
    path = Path(item)
    return ImageSource(path, str(item), PurePath(path.name))


def read_source(source: ImageSource, max_bytes: int = MAX_FILE_BYTES) -> bytes | ImageResult:
    """The file's bytes, or a failed :class:`ImageResult` saying why they cannot be sent."""

    def fail(reason: str, message: str) -> ImageResult:
        return ImageResult(source, error=message, reason=reason)

    if source.problem:
        return fail(NOT_FOUND, source.problem)
    if source.data is not None:
        return source.data if source.data else fail(EMPTY, "empty (0 bytes)")
    try:
        with open(source.path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                return fail(TOO_LARGE, f"{size} bytes, more than the client's limit of {max_bytes} bytes")
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:  # a file or a directory: which one was meant is unknown
        return fail(NOT_FOUND, f"no such file or directory: {source.name}")
    except IsADirectoryError:
        return fail(UNREADABLE, "is a directory (give --recursive, or a directory without it, to send its images)")
    except PermissionError:
        return fail(UNREADABLE, "permission denied")
    except OSError as exc:
        return fail(UNREADABLE, exc.strerror or str(exc))
    if not data:
        return fail(EMPTY, "empty file (0 bytes)")
    if len(data) > max_bytes:  # grew while being read (a pipe or special file)
        return fail(TOO_LARGE, f"more than the client's limit of {max_bytes} bytes")
    return data


Outputs = Mapping[str, Any]
Done = Callable[[Outputs | None, BaseException | None], None]
Submit = Callable[[Sequence[bytes], Done], None]

DEFAULT_RETRY_BUDGET_S = 120.0  # a healing model is back in seconds; a model reload may take a minute


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often a temporarily unavailable request is sent again (see the module)."""

    budget_s: float = DEFAULT_RETRY_BUDGET_S  # per request, from its first temporary failure; 0: never
    first_s: float = 0.25
    max_s: float = 8.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds before retry ``attempt`` (0, 1, ...): half the doubled ceiling, plus up to half jitter."""
        ceiling = min(self.max_s, self.first_s * 2**attempt)
        return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


NO_RETRY = RetryPolicy(budget_s=0.0)


@dataclass(eq=False)
class _Request:
    items: list[tuple[ImageSource, bytes]]
    attempts: int = 0  # temporary failures so far
    first_failure: float | None = None


def run_requests(
    sources: Iterable[ImageSource | str | os.PathLike],
    submit: Submit,
    split: Callable[[Outputs], list],
    *,
    batch: int,
    concurrency: int,
    keep_data: bool = False,
    resend_refused: bool = True,
    retry: RetryPolicy = NO_RETRY,
    on_retry: Callable[[str], None] | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> Iterator[ImageResult]:
    """One :class:`ImageResult` per source, in completion order (see the module docstring).

    ``submit(images, done)`` sends one request and must call ``done(outputs, None)`` or
    ``done(None, error)`` exactly once, from any thread. A :class:`RequestError` fails the
    request's images (after a one-by-one resend when there were several and ``resend_refused``,
    after retries within ``retry``'s budget when its reason is :data:`UNAVAILABLE`, each one told
    to ``on_retry`` with the server's message); any other
    error (e.g. :class:`ServerUnreachableError`) is raised here and ends the job.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    rng = rng or random.Random()
    completions: queue.SimpleQueue = queue.SimpleQueue()
    pending = iter(sources)
    singles: deque[tuple[ImageSource, bytes]] = deque()  # images of refused batches, to resend alone
    carried: tuple[ImageSource, bytes] | None = None  # read, but did not fit the last request's bytes
    waiting: list[tuple[float, int, _Request]] = []  # (due, order, request): temporary failures to resend
    order = itertools.count()
    exhausted = False
    in_flight = 0

    def send(request: _Request) -> None:
        nonlocal in_flight
        in_flight += 1

        def done(outputs: Outputs | None, error: BaseException | None) -> None:
            completions.put((request, outputs, error))

        try:
            with held():  # a Ctrl-C meanwhile is raised once the request is handed over
                submit([data for _, data in request.items], done)
        except Exception as exc:  # noqa: BLE001 - a failure to send is this request's outcome
            done(None, exc)

    def fill() -> Iterator[ImageResult]:
        """Send requests until ``concurrency`` are in flight or waiting; yield images that cannot be read."""
        nonlocal exhausted, carried
        while in_flight + len(waiting) < concurrency:
            if singles:
                send(_Request([singles.popleft()]))
                continue
            items: list[tuple[ImageSource, bytes]] = []
            longest = 0
            if carried is not None:
                items.append(carried)
                longest = len(carried[1])
                carried = None
            while len(items) < batch and not exhausted:
                try:
                    source = as_source(next(pending))
                except StopIteration:
                    exhausted = True
                    break
                data = read_source(source, max_file_bytes)
                if isinstance(data, ImageResult):
                    yield data
                    continue
                widest = max(longest, len(data))
                if items and widest * (len(items) + 1) > max_request_bytes:
                    carried = (source, data)
                    break
                items.append((source, data))
                longest = widest
            if not items:
                return
            send(_Request(items))

    def failed(request: _Request, error: RequestError) -> list[ImageResult]:
        return [ImageResult(source, error=error.message, reason=error.reason) for source, _ in request.items]

    def retried(request: _Request, error: RequestError) -> bool:
        """Schedule ``request`` again if its budget allows; False when it is spent."""
        now = clock()
        if request.first_failure is None:
            request.first_failure = now
        left = retry.budget_s - (now - request.first_failure)
        if left <= 0:
            return False
        delay = min(retry.delay(request.attempts, rng), left)
        request.attempts += 1
        heapq.heappush(waiting, (now + delay, next(order), request))
        if on_retry is not None:
            on_retry(error.message)
        return True

    yield from fill()
    while in_flight or waiting:
        timeout = max(0.0, waiting[0][0] - clock()) if waiting else None
        try:
            completed = completions.get(timeout=timeout)
        except queue.Empty:
            completed = None
        while waiting and waiting[0][0] <= clock():
            send(heapq.heappop(waiting)[2])
        if completed is None:
            continue
        request, outputs, error = completed
        in_flight -= 1
        finished: list[ImageResult] = []
        if error is None:
            try:
                answers = split(outputs)
                if len(answers) != len(request.items):
                    raise ValueError(f"{len(answers)} answers for {len(request.items)} images")
            except Exception as exc:  # noqa: BLE001 - a malformed answer fails this request only
                error = RequestError(f"unexpected answer from the server: {exc}", SERVER_ERROR)
            else:
                finished = [
                    ImageResult(source, answer, data=data if keep_data else None)
                    for (source, data), answer in zip(request.items, answers, strict=True)
                ]
        if error is not None:
            if not isinstance(error, RequestError):
                raise error
            if error.reason == UNAVAILABLE:
                if not retried(request, error):
                    message = error.message
                    if request.attempts:
                        spent = clock() - (request.first_failure or clock())
                        message += f" (still unavailable after {request.attempts} retries in {spent:.0f} s)"
                    finished = failed(request, RequestError(message, UNAVAILABLE))
            elif len(request.items) > 1 and resend_refused:
                singles.extend(request.items)
            else:
                finished = failed(request, error)
        yield from fill()  # keep the server busy before handing results out
        yield from finished
