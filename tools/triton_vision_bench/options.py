"""The settings of one bench run, and the parsing of the ones given as text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from triton_vision_authoring.repository_option import DEFAULT_REPOSITORY
from triton_vision_bench.messages import BenchUsageError
from triton_vision_models import tensors as t

MAX_CONCURRENCY = 256
DEFAULT_CACHE_SIZE = 256 * 2**20  # the repeats workload's server: a response cache of 256 MiB


@dataclass
class BenchOptions:
    ensemble: str = t.CLASSIFICATION
    url: str | None = None  # a running server's gRPC address; None: the bench starts one
    model_repository: Path = DEFAULT_REPOSITORY
    images: tuple[Path, ...] = ()
    photos: Path | None = None  # JPEGs to send as JPEG and PNG (default: scikit-image's)
    max_images: int = 8
    concurrency: tuple[int, ...] | None = None  # None: the task's default sweep
    baseline_concurrency: tuple[int, ...] | None = None
    duration_s: float = 4.0
    warmup_s: float = 1.5
    max_point_s: float = 120.0
    perf_analyzer: bool = True
    perf_analyzer_concurrency: tuple[int, ...] = (1, 4)
    repeats: bool = True  # the repeated-image workload, on a server with a response cache
    cache_size: int = DEFAULT_CACHE_SIZE
    repeat_concurrency: tuple[int, ...] | None = None  # None: 1 and the sweep's highest
    separate_steps: bool = False  # the bench's server runs each ensemble's steps as separate models
    peer: bool = True  # the server a user would write instead (:mod:`.peer`), same photos and concurrencies
    peer_workers: int = 2
    peer_device: str = "cpu"  # "cuda": the peer's ONNX Runtime on CUDA's execution provider
    compare_onnx: Path | None = None  # detection: another detector to compare in-process (speed, boxes)
    out: Path = Path("out/bench")
    note: str = ""

    def check(self) -> BenchOptions:
        """Itself, or :class:`BenchUsageError` naming the first setting that cannot be measured."""
        if self.duration_s <= 0:
            raise BenchUsageError(f"--duration must be positive, got {self.duration_s:g}")
        if self.warmup_s < 0:
            raise BenchUsageError(f"--warmup must not be negative, got {self.warmup_s:g}")
        if self.max_images < 1:
            raise BenchUsageError(f"--max-images must be at least 1, got {self.max_images}")
        if self.peer_workers < 1:
            raise BenchUsageError(f"--peer-workers must be at least 1, got {self.peer_workers}")
        if self.compare_onnx is not None and not self.compare_onnx.is_file():
            raise BenchUsageError(f"--compare-onnx {self.compare_onnx}: no such file")
        if self.repeats and self.cache_size <= 0 and self.url is None:
            raise BenchUsageError(
                "--cache-size must be positive for the repeated-image workload (or give --no-repeats)"
            )
        return self


def parse_concurrency(text: str, option: str = "--concurrency") -> tuple[int, ...]:
    """``1,2,4`` -> (1, 2, 4), sorted, each once; every value an integer in 1..256."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BenchUsageError(f"{option} takes integers separated by commas, got '{text}'") from None
    if not values or any(not 1 <= v <= MAX_CONCURRENCY for v in values):
        raise BenchUsageError(f"{option} values must be in 1..{MAX_CONCURRENCY}, got '{text}'")
    return tuple(sorted(set(values)))


def parse_cache_size(text: str) -> int:
    """``256M`` -> bytes, as ``serve --cache-size`` reads it."""
    from triton_vision_serving.server_config import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise BenchUsageError(f"--cache-size: {exc}") from None
