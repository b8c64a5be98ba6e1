"""Many images, many requests in flight: the engine behind ``classify_many`` and folder jobs.

Transport-free: :func:`run_requests` takes a ``submit`` function that sends one request and
later calls back with its outputs or its error (from any thread). The engine, a generator running
in the caller's thread, keeps up to ``concurrency`` requests in flight, reads images from disk
only as requests go out (so memory is bounded by ``(concurrency + 1) x batch`` images whatever the
number of inputs), packs up to ``batch`` images per request, and yields one
:class:`ImageResult` per image as its request completes. A request the server refuses as a
whole (one bad image fails a batch) is sent again image by image, so only the bad image fails.
"""

from __future__ import annotations

import os
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from .errors import ClientError
from .inputs import ImageSource

# Why an image failed (the summary counts failures by these).
NOT_FOUND = "not found"
UNREADABLE = "unreadable"
EMPTY = "empty"
TOO_LARGE = "too large"
REFUSED = "refused"  # the server said the image (or a parameter) is invalid: its message says why
TIMED_OUT = "timed out"
SERVER_ERROR = "server error"
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
    """One request failed for a reason that concerns its images (not the whole job)."""

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
    try:
        with open(source.path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                return fail(TOO_LARGE, f"{size} bytes, more than the client's limit of {max_bytes} bytes")
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        return fail(NOT_FOUND, "no such file")
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


def run_requests(
    sources: Iterable[ImageSource | str | os.PathLike],
    submit: Submit,
    split: Callable[[Outputs], list],
    *,
    batch: int,
    concurrency: int,
    keep_data: bool = False,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_request_bytes: int = MAX_REQUEST_BYTES,
) -> Iterator[ImageResult]:
    """One :class:`ImageResult` per source, in completion order (see the module docstring).

    ``submit(images, done)`` sends one request and must call ``done(outputs, None)`` or
    ``done(None, error)`` exactly once, from any thread. A :class:`RequestError` fails the
    request's images (after a one-by-one retry when there were several); any other error (e.g.
    :class:`ServerUnreachableError`) is raised here and ends the job.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    completions: queue.SimpleQueue = queue.SimpleQueue()
    pending = iter(sources)
    singles: deque[tuple[ImageSource, bytes]] = deque()  # images of refused batches, to resend alone
    carried: tuple[ImageSource, bytes] | None = None  # read, but did not fit the last request's bytes
    exhausted = False
    in_flight = 0

    def send(items: list[tuple[ImageSource, bytes]]) -> None:
        nonlocal in_flight
        in_flight += 1

        def done(outputs: Outputs | None, error: BaseException | None) -> None:
            completions.put((items, outputs, error))

        try:
            submit([data for _, data in items], done)
        except Exception as exc:  # noqa: BLE001 - a failure to send is this request's outcome
            done(None, exc)

    def fill() -> Iterator[ImageResult]:
        """Send requests until ``concurrency`` are in flight; yield images that cannot be read."""
        nonlocal exhausted, carried
        while in_flight < concurrency:
            if singles:
                send([singles.popleft()])
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
            send(items)

    yield from fill()
    while in_flight:
        items, outputs, error = completions.get()
        in_flight -= 1
        finished: list[ImageResult] = []
        if error is None:
            try:
                answers = split(outputs)
                if len(answers) != len(items):
                    raise ValueError(f"{len(answers)} answers for {len(items)} images")
            except Exception as exc:  # noqa: BLE001 - a malformed answer fails this request only
                error = RequestError(f"unexpected answer from the server: {exc}", SERVER_ERROR)
            else:
                finished = [
                    ImageResult(source, answer, data=data if keep_data else None)
                    for (source, data), answer in zip(items, answers, strict=True)
                ]
        if error is not None:
            if not isinstance(error, RequestError):
                raise error
            if len(items) > 1:
                singles.extend(items)
            else:
                finished = [ImageResult(items[0][0], error=error.message, reason=error.reason)]
        yield from fill()  # keep the server busy before handing results out
        yield from finished
