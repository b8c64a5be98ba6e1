"""One path (the ensemble, or the client-side-preprocessing baseline to the bare model) over a concurrency sweep.

Each point is one window of :func:`load.drive`; at its opening and its closing the sweep takes
Triton's statistics (``get_inference_statistics``) and a snapshot of the server's processes, so
each point carries per-step statistics deltas and CPU per image per process.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from triton_vision_bench import cpu
from triton_vision_bench import report as br
from triton_vision_bench.images import BenchImage
from triton_vision_bench.load import drive
from triton_vision_bench.messages import BenchError, progress
from triton_vision_bench.options import BenchOptions
from triton_vision_bench.profiles import Profile
from triton_vision_models import tensors as t
from triton_vision_serving import procfs

ENSEMBLE = "ensemble"
BASELINE = "baseline"  # the client preprocesses (OpenCV) and sends FP32 tensors to the bare model
REPEATS = "repeats"  # the ensemble, every other request repeating an image sent before (the response cache)
FRESH, REPEAT = "fresh", "repeat"


def unique_bytes(data: bytes, serial: int) -> bytes:
    """``data`` followed by a trailer that makes its bytes new to the response cache. Decoders stop at
    the image's end (JPEG's end-of-image marker, PNG's IEND chunk), so it decodes as ``data`` does."""
    return data + b"#tv-bench-%08x" % serial


def request_bytes(model: str, inputs: list, outputs: list | None = None) -> int:
    """Bytes of the gRPC ModelInferRequest tritonclient sends (protobuf; HTTP/2 framing aside)."""
    from tritonclient.grpc._utils import _get_inference_request

    request = _get_inference_request(
        model_name=model,
        inputs=inputs,
        model_version="",
        request_id="",
        outputs=outputs,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        parameters=None,
    )
    return request.ByteSize()


def infer_input(name: str, array: np.ndarray):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array)
    return tensor


class Sweep:
    """The paths against one server; ``server_pid`` and ``served_repository`` when it is a local process."""

    def __init__(
        self,
        url: str,
        options: BenchOptions,
        images: list[BenchImage],
        profile: Profile,
        server_pid: int | None,
        served_repository: Path | None = None,
        *,
        process_order: Sequence[str] | None = None,  # the processes listed first (default: the steps)
    ) -> None:
        self.url = url
        self.process_order = list(process_order) if process_order is not None else list(profile.steps)
        self.server_pid = server_pid
        self.served_repository = served_repository
        self.options = options
        self.images = images
        self.profile = profile

    async def run(self, path: str, concurrencies: Sequence[int], label: str, step_models: Sequence[str]) -> dict:
        import tritonclient.grpc as grpcclient
        import tritonclient.grpc.aio as aioclient

        profile = self.profile
        points = []
        error = ""
        client = aioclient.InferenceServerClient(self.url)
        pool = ThreadPoolExecutor(max_workers=max(concurrencies), thread_name_prefix="bench-preprocess")
        try:
            if path in (ENSEMBLE, REPEATS):
                prepared = [[infer_input(t.IMAGE, np.frombuffer(i.data, np.uint8)[None])] for i in self.images]
                model = profile.ensemble
                outputs = None
                wire = [request_bytes(model, inputs) for inputs in prepared]
            else:
                model = profile.model
                outputs = [grpcclient.InferRequestedOutput(name) for name in profile.model_outputs]
                wire = [
                    request_bytes(model, [infer_input(k, v) for k, v in profile.preprocess(i.data).items()], outputs)
                    for i in self.images
                ]
            response_sizes: list[int] = []
            loop = asyncio.get_running_loop()

            sent = itertools.count()  # the repeats path: requests in the order they are sent
            recent: collections.deque[list] = collections.deque(maxlen=64)  # fresh images answered

            async def send(index: int) -> str | None:
                image = index % len(self.images)
                kind = None
                if path == ENSEMBLE:
                    inputs = prepared[image]
                elif path == REPEATS:
                    serial = next(sent)
                    kind = REPEAT if serial % 2 and recent else FRESH
                    if kind == REPEAT:
                        inputs = recent[-1]
                    else:
                        data = unique_bytes(self.images[(serial // 2) % len(self.images)].data, serial)
                        inputs = [infer_input(t.IMAGE, np.frombuffer(data, np.uint8)[None])]
                else:
                    tensors = await loop.run_in_executor(pool, profile.preprocess, self.images[image].data)
                    inputs = [infer_input(k, v) for k, v in tensors.items()]
                result = await client.infer(model, inputs, outputs=outputs, client_timeout=600)
                if kind == FRESH:
                    recent.append(inputs)
                if len(response_sizes) < 2 * len(self.images):
                    response_sizes.append(result.get_response().ByteSize())
                return kind

            for concurrency in concurrencies:
                snapshots: dict[str, Any] = {}

                async def on_window(event: str, _snapshots=snapshots) -> None:
                    _snapshots[event] = await client.get_inference_statistics(as_json=True)
                    _snapshots[event + "_processes"] = cpu.server_tree(self.server_pid, self.served_repository)

                progress(f"{label}: concurrency {concurrency} ...")
                try:
                    result = await drive(
                        send,
                        concurrency,
                        warmup_s=self.options.warmup_s,
                        duration_s=self.options.duration_s,
                        min_requests=profile.settings.min_requests,
                        max_point_s=self.options.max_point_s,
                        on_window=on_window,
                    )
                except BenchError as exc:
                    error = str(exc)
                    progress(f"{label}: {exc}")
                    break
                point = self._point(result, wire, response_sizes, snapshots, step_models)
                points.append(point)
                progress(
                    f"{label}: concurrency {concurrency}: {point['images_per_s']:.2f} images/s, "
                    f"p50 {point['p50_ms']:.1f} ms, p99 {point['p99_ms']:.1f} ms ({point['images']} images)"
                )
        finally:
            pool.shutdown(wait=True)
            await client.close()
        return {"label": label, "source": self.source(path), "points": points, "error": error}

    def _point(
        self, result, wire: list[int], response_sizes: list[int], snapshots: dict[str, Any], step_models
    ) -> dict[str, Any]:
        images = len(result.latencies_s)
        point: dict[str, Any] = {
            "concurrency": result.concurrency,
            "images": images,
            "window_s": result.window_s,
            "images_per_s": images / result.window_s if result.window_s > 0 else math.nan,
            **br.latency_summary(result.latencies_s),
            "request_bytes_per_image": sum(wire) / len(wire),
            "response_bytes_per_image": (sum(response_sizes) / len(response_sizes)) if response_sizes else math.nan,
            "client_cpu_ms_per_image": result.client_cpu_s / images * 1e3 if images else math.nan,
            "errors": result.errors,
        }
        client = procfs.read_stat(os.getpid())
        if client is not None:
            point["client_rss_mb"] = client.rss_bytes / 2**20
        before, after = snapshots.get("open_processes"), snapshots.get("close_processes")
        if before is not None and after is not None and images:
            point["server_processes"] = cpu.per_image(before, after, images, order=self.process_order)
            point["server_cpu_ms_per_image"] = sum(row["cpu_ms_per_image"] for row in point["server_processes"])
        for kind, latencies in result.latencies_by_kind.items():
            point[kind] = {"requests": len(latencies), **br.latency_summary(latencies)}
        if result.first_error:
            point["first_error"] = result.first_error
        if step_models and "open" in snapshots and "close" in snapshots:
            point["server_steps"] = br.statistics_delta(
                snapshots["open"], snapshots["close"], step_models, result.window_s
            )
            for row in point["server_steps"]:
                if row["model"] in self.profile.nested:  # an ensemble: its steps are the ones busy
                    row["busy"] = math.nan
        return point

    def source(self, path: str) -> str:
        if path == REPEATS:
            return (
                "the same load generator against a server with a response cache (`--cache-size`); every other"
                " request repeats the image of the latest answered one, the others are new to the cache (an image's"
                " bytes with a short trailer after its end, which decoders ignore)"
            )
        if path == ENSEMBLE:
            return (
                "triton_vision_bench's asyncio gRPC load generator (tritonclient.grpc.aio), encoded bytes,"
                " one image per request, images in turn"
            )
        return (
            "the same load generator; each request decodes and preprocesses its image with OpenCV in a client"
            f" thread and sends FP32 tensors to the bare `{self.profile.model}`"
        )
