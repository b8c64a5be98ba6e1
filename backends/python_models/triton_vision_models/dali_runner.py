"""Run a DALI pipeline defined in a model's ``dali.py`` for a list of requests.

The pipeline file follows the DALI backend's autoserialization convention: exactly one
``@autoserialize``-decorated ``@pipeline_def`` whose external sources are named after the
config's inputs and whose outputs are returned in the order of the config's outputs. Here the
pipeline is built in-process (``device_id=None`` without a GPU) and fed the samples of all
requests in one execution, in sub-batches bounded by a pixel budget.

Memory: a DALI CPU pipeline keeps every operator's output buffers at the largest size they ever
held, so one batch of huge images would pin gigabytes for the life of the process. The runner
therefore (1) splits an execution into sub-batches whose declared decoded pixels stay within
``max_batch_pixels`` (an image larger than that runs alone), and (2) after a sub-batch above
``release_above_pixels`` drops the pipeline and builds a fresh one, then hands freed heap back to
the operating system (``malloc_trim``; DALI's own pools via ``ReleaseUnusedMemory``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from . import tensors as t
from .errors import ConfigError, ImageRejectedError, InferenceError, ModelFileError
from .imageguard import declared_pixels
from .imports import import_file
from .model_config import ModelConfig, RequestData

DEFAULT_PIPELINE_FILENAME = "dali.py"
# Defaults of the config parameters (docs/reliability.md#bounded-bytes-and-memory): 64 M pixels decode to 192 MB of RGB;
# with the decoder's and resize's working buffers a sub-batch peaks at ~0.4 GB, so the three DALI
# models at once stay near 1.2 GB. A pipeline that has held more than 16 M pixels is rebuilt.
DEFAULT_MAX_BATCH_PIXELS = 64_000_000
DEFAULT_RELEASE_ABOVE_PIXELS = 16_000_000


def plan_sub_batches(pixels: Sequence[int], max_count: int, max_pixels: int) -> list[range]:
    """Consecutive runs of samples with at most ``max_count`` samples and ``max_pixels`` declared
    pixels each; a sample above ``max_pixels`` on its own forms a run of one."""
    if max_count < 1 or max_pixels < 1:
        raise ConfigError(f"sub-batch limits must be positive, got {max_count} samples and {max_pixels} pixels")
    runs: list[range] = []
    start, total = 0, 0
    for index, count in enumerate(pixels):
        if index > start and (index - start >= max_count or total + count > max_pixels):
            runs.append(range(start, index))
            start, total = index, 0
        total += count
    if start < len(pixels):
        runs.append(range(start, len(pixels)))
    return runs


def release_heap() -> None:
    """Return freed heap pages to the OS (glibc); DALI's device and pinned pools too."""
    try:
        from nvidia.dali.backend import ReleaseUnusedMemory  # type: ignore[attr-defined]  # not in its stub

        ReleaseUnusedMemory()
    except (ImportError, RuntimeError):
        pass
    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def load_pipeline_module(path: Path, module_name: str) -> ModuleType:
    return import_file(path, module_name, "DALI pipeline file", ModelFileError)


def find_autoserialized(module: ModuleType, where: Path | str) -> Callable:
    """The module's one ``@autoserialize`` pipeline function (the DALI backend's convention);
    :class:`ModelFileError` naming ``where`` (the file) otherwise."""
    found = [
        obj for _, obj in inspect.getmembers(module, inspect.isfunction) if getattr(obj, "_is_autoserialize", False)
    ]
    if len(found) != 1:
        raise ModelFileError(f"{where}: expected exactly one @autoserialize pipeline_def, found {len(found)}")
    return found[0]


def decoder_message(exc: BaseException) -> str:
    """DALI's errors carry the pipeline's traceback; keep what the operator itself said."""
    text = str(exc)
    if "encountered:" in text:
        text = text.split("encountered:", 1)[1]
    lines = [line.strip().rstrip(" :") for line in text.splitlines() if line.strip() and "no longer valid" not in line]
    return "; ".join(lines) or type(exc).__name__


class DaliRunner:
    """A pure runner (see :mod:`triton_adapter`) around one built DALI pipeline."""

    def __init__(self, config: ModelConfig, build_pipeline: Callable[[], Any]) -> None:
        if not config.batched:
            raise ConfigError(f"model '{config.name}': a DALI model needs max_batch_size > 0")
        self.config = config
        self.build_pipeline = build_pipeline
        self.pipeline = build_pipeline()
        self.input_names = [tensor.name for tensor in config.inputs]
        self.output_names = [tensor.name for tensor in config.outputs]
        self.max_batch_pixels = config.int_setting("max_batch_pixels", DEFAULT_MAX_BATCH_PIXELS)
        self.release_above_pixels = config.int_setting("release_above_pixels", DEFAULT_RELEASE_ABOVE_PIXELS)
        if self.max_batch_pixels < 1 or self.release_above_pixels < 0:
            raise ConfigError(
                f"model '{config.name}': max_batch_pixels must be >= 1 and release_above_pixels >= 0, "
                f"got {self.max_batch_pixels} and {self.release_above_pixels}"
            )
        self.rebuilds = 0  # pipelines rebuilt to release memory (read by tests)

    @classmethod
    def from_config(cls, config: ModelConfig) -> DaliRunner:
        """Build the version folder's pipeline; ``num_threads`` comes from the config's parameters."""
        num_threads = config.int_setting("num_threads", 2)
        path = config.version_dir / (config.default_model_filename or DEFAULT_PIPELINE_FILENAME)
        module = load_pipeline_module(path, f"triton_vision_dali_{config.name}")
        pipeline_fn = find_autoserialized(module, path)

        def build():
            pipeline = pipeline_fn(
                batch_size=config.max_batch_size,
                num_threads=num_threads,
                device_id=config.device_id,
                prefetch_queue_depth=1,
                exec_async=False,
                exec_pipelined=False,
            )
            pipeline.build()
            return pipeline

        return cls(config, build)

    def release(self) -> None:
        """Drop the pipeline (and the buffers it grew) and build a fresh one."""
        self.pipeline = None
        self.pipeline = self.build_pipeline()
        release_heap()
        self.rebuilds += 1

    def sample_pixels(self, samples: dict[str, list[np.ndarray]]) -> list[int]:
        """Declared decoded pixels per sample of the encoded-image input (0 where there is none)."""
        rows = samples.get(t.IMAGE)
        if rows is None:
            return [0] * len(next(iter(samples.values()), []))
        return [declared_pixels(row) for row in rows]

    def run_samples(self, samples: dict[str, list[np.ndarray]]) -> list[list[np.ndarray]]:
        """Run one batch; ``samples`` maps input name to per-sample arrays."""
        try:
            for name in self.input_names:
                self.pipeline.feed_input(name, samples[name])
            outputs = self.pipeline.run()
        except Exception:
            # A DALI pipeline is unusable after a critical error (e.g. a corrupt image): rebuild.
            self.pipeline = self.build_pipeline()
            raise
        if len(outputs) != len(self.output_names):
            raise ConfigError(
                f"model '{self.config.name}': pipeline returns {len(outputs)} outputs, "
                f"config declares {len(self.output_names)} ({self.output_names})"
            )
        per_output = []
        for tensor_list in outputs:
            if hasattr(tensor_list, "as_cpu"):
                tensor_list = tensor_list.as_cpu()
            if tensor_list.is_dense_tensor():  # one copy out of DALI's buffers, samples as views of it
                per_output.append(list(tensor_list.as_array()))
            else:
                per_output.append([np.array(tensor_list.at(i)) for i in range(len(tensor_list))])
        return per_output

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray] | Exception]:
        """All requests as one batch; if decoding fails, each request alone, so only bad ones fail."""
        try:
            return list(self.run_requests(requests))
        except Exception:  # noqa: BLE001 - isolated below, sample by sample
            return [self.run_isolated(request) for request in requests]

    def run_isolated(self, request: RequestData) -> dict[str, np.ndarray] | Exception:
        try:
            return self.run_requests([request])[0]
        except Exception as batch_error:  # noqa: BLE001
            for index in range(request.batch_size(self.config)):
                single = RequestData({name: value[index : index + 1] for name, value in request.inputs.items()})
                try:
                    self.run_requests([single])
                except Exception as exc:  # noqa: BLE001
                    return ImageRejectedError(
                        f"model '{self.config.name}': image {index} is corrupt or truncated: "
                        f"the decoder failed ({decoder_message(exc)})"
                    )
            return InferenceError(f"model '{self.config.name}': {decoder_message(batch_error)}")

    def run_requests(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray]]:
        sizes = [request.batch_size(self.config) for request in requests]
        samples = {name: [row for request in requests for row in request.inputs[name]] for name in self.input_names}
        pixels = self.sample_pixels(samples)
        produced: list[list[np.ndarray]] = [[] for _ in self.output_names]
        for run in plan_sub_batches(pixels, self.config.max_batch_size, self.max_batch_pixels):
            chunk = {name: rows[run.start : run.stop] for name, rows in samples.items()}
            try:
                outputs = self.run_samples(chunk)
            finally:
                if sum(pixels[run.start : run.stop]) > self.release_above_pixels:
                    self.release()
            for slot, values in enumerate(outputs):
                produced[slot].extend(values)
        results = []
        offset = 0
        for size in sizes:
            answer: dict[str, np.ndarray] = {}
            for name, values in zip(self.output_names, produced, strict=True):
                mine = values[offset : offset + size]
                shapes = {v.shape for v in mine}
                if len(shapes) != 1:
                    raise InferenceError(
                        f"model '{self.config.name}': output '{name}' has different shapes within one "
                        f"request ({sorted(shapes)}); the pipeline must give uniform shapes"
                    )
                answer[name] = mine[0][None] if size == 1 else np.stack(mine)
            results.append(answer)
            offset += size
        return results
