"""``triton-vision bench``: the ensemble against client-side preprocessing, in-process and the work bound.

In one run, on the same real photos (JPEG and PNG, several sizes) and the same ``model.onnx``:

- the ensemble over a concurrency sweep, driven by this module's asyncio gRPC load generator
  (one image per request), with Triton's per-model statistics as deltas over every window;
- optionally ``perf_analyzer`` (from the tritonclient wheel, via :mod:`perf`) on the ensemble;
- the seed's path: the client decodes and preprocesses with OpenCV and sends FP32 tensors to the
  bare ONNX model through the same server;
- in-process: OpenCV preprocessing + ONNX Runtime in this process (the ceiling without serving),
  single-image latency, and the model alone on preprocessed tensors;
- the work bound: cores / (preprocessing + model CPU-seconds per image, one thread each, at the
  in-process batch).

It writes ``<out>/bench-<ensemble>.md``, ``.json`` and ``.png`` and prints progress to stderr.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from triton_vision_models import tensors as t
from triton_vision_models.errors import TritonVisionError

from . import bench_report as br

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255
MAX_IMAGES = 12
SHARED_IMAGES = Path("../shared/images")


class BenchError(TritonVisionError):
    """The benchmark cannot run or a path failed entirely."""


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- images ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchImage:
    name: str
    data: bytes
    width: int
    height: int

    @property
    def format(self) -> str:
        return "PNG" if self.data[:4] == b"\x89PNG" else "JPEG"


def _encode(rgb: np.ndarray, ext: str) -> bytes:
    import cv2

    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise BenchError(f"OpenCV could not encode a {ext} image")
    return data.tobytes()


def _shrink(rgb: np.ndarray, longer: int) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    scale = longer / max(height, width)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def default_photos() -> list[tuple[str, np.ndarray, bytes | None]]:
    """(name, RGB, original JPEG bytes or None): ../shared/images, else scikit-image's photos."""
    import cv2

    found = sorted(SHARED_IMAGES.glob("*.jpg")) if SHARED_IMAGES.is_dir() else []
    photos: list[tuple[str, np.ndarray, bytes | None]] = []
    for path in found:
        data = path.read_bytes()
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is not None:
            photos.append((path.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), data))
    if photos:
        return photos
    from skimage import data as skdata

    return [(name, getattr(skdata, name)(), None) for name in ("chelsea", "astronaut", "coffee")]


def bench_images(paths: Sequence[Path] = (), limit: int = 8) -> list[BenchImage]:
    """Real photos as JPEG and PNG at several sizes, at most ``limit``.

    Given files are used as they are. Otherwise each photo travels as its original JPEG (or a
    JPEG of quality 95) and as a PNG of its copy shrunk to 640 px on the longer side.
    """
    import cv2

    limit = max(1, min(limit, MAX_IMAGES))
    images: list[BenchImage] = []
    if paths:
        for path in list(paths)[:limit]:
            data = Path(path).read_bytes()
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise BenchError(f"{path}: not an image OpenCV can decode")
            images.append(BenchImage(Path(path).name, data, bgr.shape[1], bgr.shape[0]))
        return images
    for name, rgb, original in default_photos():
        jpeg = original if original is not None else _encode(rgb, ".jpg")
        images.append(BenchImage(f"{name}.jpg", jpeg, rgb.shape[1], rgb.shape[0]))
        small = _shrink(rgb, 640)
        label = f"{name}-{small.shape[1]}x{small.shape[0]}.png"
        images.append(BenchImage(label, _encode(small, ".png"), small.shape[1], small.shape[0]))
    return images[:limit]


# -- client-side preprocessing (the seed's path and the in-process reference) -------------------
def _decode_rgb(data: bytes) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BenchError("OpenCV could not decode an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _normalise_chw(rgb: np.ndarray) -> np.ndarray:
    return ((rgb.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)


def classification_tensors(data: bytes) -> dict[str, np.ndarray]:
    """The classification spec's preprocessing (torchvision's Resize(256) + CenterCrop(224), mean/std, CHW),
    with OpenCV: resnet18's ``data`` [1, 3, 224, 224]."""
    from triton_vision_server.modelgen.modelspec import load_spec
    from triton_vision_server.modelgen.preprocess import network_input

    spec = load_spec(Path(__file__).resolve().parents[2] / "model_repository" / "classification" / "spec.toml")
    return {"data": network_input(data, spec.preprocess).pixels[None]}


def detection_tensors(data: bytes) -> dict[str, np.ndarray]:
    """torchvision's rule: scale = min(800/shorter, 1333/longer), bilinear; ``images`` and ``image_sizes``."""
    import cv2

    rgb = _decode_rgb(data)
    height, width = rgb.shape[:2]
    scale = min(800 / min(height, width), 1333 / max(height, width))
    size = (math.floor(height * scale), math.floor(width * scale))
    rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return {"images": _normalise_chw(rgb)[None], "image_sizes": np.array([size], dtype=np.int64)}


def segmentation_tensors(data: bytes, canvas: int = 520) -> dict[str, np.ndarray]:
    """Longer side to 520 (area), top-left in a zero 520x520 canvas after mean/std: fcn's ``input``."""
    import cv2

    rgb = _decode_rgb(data)
    height, width = rgb.shape[:2]
    scale = canvas / max(height, width)
    size = (min(canvas, int(height * scale + 0.5)), min(canvas, int(width * scale + 0.5)))
    rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    pixels = np.zeros((1, 3, canvas, canvas), dtype=np.float32)
    pixels[0, :, : size[0], : size[1]] = _normalise_chw(rgb)
    return {"input": pixels}


@dataclass(frozen=True)
class Profile:
    """What the bench needs to know about one ensemble."""

    ensemble: str
    model: str  # the ONNX model the seed's path calls directly
    preprocess: Callable[[bytes], dict[str, np.ndarray]]
    model_outputs: tuple[str, ...]  # what the seed's path asks the bare model for
    in_process_batch: int  # the best batch in-process (and for the work bound)
    concurrency: tuple[int, ...]
    seed_concurrency: tuple[int, ...]
    min_requests: int  # completions per point, however long it takes (bounded by max_point_s)
    steps: tuple[str, ...] = field(default=())


PROFILES = {
    t.CLASSIFICATION: Profile(
        t.CLASSIFICATION,
        t.CLASSIFIER,
        classification_tensors,
        ("resnetv15_dense0_fwd",),
        8,
        (1, 2, 4, 8, 16),
        (1, 2, 4, 8, 16),
        8,
    ),
    t.DETECTION: Profile(
        t.DETECTION, t.DETECTOR, detection_tensors, ("boxes", "scores", "labels", "count"), 1, (1, 2), (1, 2), 2
    ),
    t.SEGMENTATION: Profile(t.SEGMENTATION, t.SEGMENTER, segmentation_tensors, ("out",), 2, (1, 2, 4), (1, 2), 2),
}


def ensemble_steps(repository: Path, ensemble: str) -> list[str]:
    """The composing models of an ensemble, in step order, from its config.pbtxt."""
    from triton_vision_models.repository import ModelRepository

    path = repository / ensemble / "config.pbtxt"
    if not path.is_file():
        raise BenchError(f"{path} does not exist: is {repository} a triton-vision model repository?")
    return ModelRepository.load(repository).composing_models(ensemble)


def bench_repository(source: Path, ensemble: str, target: Path) -> Path:
    """A repository with only the ensemble and its models; ONNX files linked, not copied."""
    for name in [ensemble, *ensemble_steps(source, ensemble)]:
        shutil.copytree(source / name, target / name, ignore=shutil.ignore_patterns("*.onnx", "__pycache__"))
        for onnx_file in (source / name).glob("*/*.onnx"):
            link = target / name / onnx_file.parent.name / onnx_file.name
            link.symlink_to(onnx_file.resolve())
    return target


# -- CPU seconds of the server's processes ---------------------------------------------------
def parse_proc_stat(text: str) -> tuple[int, int, int]:
    """(pid, ppid, utime + stime in clock ticks) from one ``/proc/<pid>/stat`` line."""
    pid = int(text.split(" ", 1)[0])
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return pid, int(fields[1]), int(fields[11]) + int(fields[12])


def tree_cpu_s(root: int, stats: Sequence[tuple[int, int, int]], ticks_per_s: float) -> float:
    """CPU seconds of ``root`` and every descendant among ``stats`` (pid, ppid, ticks)."""
    children: dict[int, list[int]] = {}
    ticks = {}
    for pid, ppid, used in stats:
        children.setdefault(ppid, []).append(pid)
        ticks[pid] = used
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / ticks_per_s


def server_cpu_s(root: int | None) -> float | None:
    """CPU seconds used so far by a local ``tritonserver`` and its backend stubs; None if unknown."""
    if root is None or not Path("/proc").is_dir():
        return None
    stats = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats.append(parse_proc_stat((entry / "stat").read_text()))
            except (OSError, ValueError, IndexError):
                continue  # the process ended meanwhile
    return tree_cpu_s(root, stats, os.sysconf("SC_CLK_TCK"))


# -- the load generator ---------------------------------------------------------------------
@dataclass
class PointResult:
    concurrency: int
    latencies_s: list[float]
    window_s: float
    errors: int
    first_error: str
    client_cpu_s: float


async def drive(
    send: Callable[[int], Awaitable[None]],
    concurrency: int,
    *,
    warmup_s: float,
    duration_s: float,
    min_requests: int,
    max_point_s: float,
    on_window: Callable[[str], Awaitable[None]] | None = None,
) -> PointResult:
    """``concurrency`` workers call ``send(i)`` back to back (i counts requests per worker).

    The window opens at the first completion after ``warmup_s`` and closes at the first completion
    once ``duration_s`` has passed and ``min_requests`` completed (or ``max_point_s`` after it
    opened). Throughput is completions after the opening one / window length: the exact
    completion rate, whatever the request duration.
    """
    start = time.perf_counter()
    state: dict[str, Any] = {"open": None, "close": None, "count": 0, "errors": 0, "first_error": ""}
    latencies: list[float] = []
    cpu = {}

    async def completed(now: float, latency: float) -> None:
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
        elapsed = now - state["open"]
        if (elapsed >= duration_s and state["count"] >= min_requests) or elapsed >= max_point_s:
            state["close"] = now
            cpu["stop"] = time.process_time()
            if on_window:
                await on_window("close")

    async def worker(slot: int) -> None:
        index = slot
        while state["close"] is None:
            if time.perf_counter() - start > warmup_s + max_point_s + 60 and state["open"] is None:
                break  # nothing completes: give up
            sent = time.perf_counter()
            try:
                await send(index)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the sweep goes on
                state["errors"] += 1
                state["first_error"] = state["first_error"] or f"{type(exc).__name__}: {exc}"[:400]
                if state["errors"] > 20 and state["open"] is None:
                    break
                continue
            now = time.perf_counter()
            await completed(now, now - sent)
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
    )


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


def _infer_input(name: str, array: np.ndarray):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array)
    return tensor


class Sweep:
    """One path (ensemble or seed) over concurrencies, against one server."""

    def __init__(
        self, url: str, options: BenchOptions, images: list[BenchImage], profile: Profile, server_pid: int | None
    ) -> None:
        self.url = url
        self.server_pid = server_pid
        self.options = options
        self.images = images
        self.profile = profile

    async def _stats(self, client) -> dict:
        return await client.get_inference_statistics(as_json=True)

    async def run(self, path: str, concurrencies: Sequence[int], label: str, step_models: Sequence[str]) -> dict:
        import tritonclient.grpc as grpcclient
        import tritonclient.grpc.aio as aioclient

        profile = self.profile
        points = []
        error = ""
        client = aioclient.InferenceServerClient(self.url)
        pool = ThreadPoolExecutor(max_workers=max(concurrencies), thread_name_prefix="bench-preprocess")
        try:
            if path == "ensemble":
                prepared = [[_infer_input(t.IMAGE, np.frombuffer(i.data, np.uint8)[None])] for i in self.images]
                model = profile.ensemble
                outputs = None
                wire = [request_bytes(model, inputs) for inputs in prepared]
            else:
                model = profile.model
                outputs = [grpcclient.InferRequestedOutput(name) for name in profile.model_outputs]
                wire = [
                    request_bytes(model, [_infer_input(k, v) for k, v in profile.preprocess(i.data).items()], outputs)
                    for i in self.images
                ]
            response_sizes: list[int] = []
            loop = asyncio.get_running_loop()

            async def send(index: int) -> None:
                image = index % len(self.images)
                if path == "ensemble":
                    inputs = prepared[image]
                else:
                    tensors = await loop.run_in_executor(pool, profile.preprocess, self.images[image].data)
                    inputs = [_infer_input(k, v) for k, v in tensors.items()]
                result = await client.infer(model, inputs, outputs=outputs, client_timeout=600)
                if len(response_sizes) < 2 * len(self.images):
                    response_sizes.append(result.get_response().ByteSize())

            for concurrency in concurrencies:
                snapshots: dict[str, Any] = {}

                async def on_window(event: str, _snapshots=snapshots) -> None:
                    _snapshots[event] = await self._stats(client)
                    _snapshots[event + "_cpu"] = server_cpu_s(self.server_pid)

                progress(f"{label}: concurrency {concurrency} ...")
                try:
                    result = await drive(
                        send,
                        concurrency,
                        warmup_s=self.options.warmup_s,
                        duration_s=self.options.duration_s,
                        min_requests=profile.min_requests,
                        max_point_s=self.options.max_point_s,
                        on_window=on_window,
                    )
                except BenchError as exc:
                    error = str(exc)
                    progress(f"{label}: {exc}")
                    break
                images = len(result.latencies_s)
                point: dict[str, Any] = {
                    "concurrency": concurrency,
                    "images": images,
                    "window_s": result.window_s,
                    "images_per_s": images / result.window_s if result.window_s > 0 else math.nan,
                    **br.latency_summary(result.latencies_s),
                    "request_bytes_per_image": sum(wire) / len(wire),
                    "response_bytes_per_image": (sum(response_sizes) / len(response_sizes))
                    if response_sizes
                    else math.nan,
                    "client_cpu_ms_per_image": result.client_cpu_s / images * 1e3 if images else math.nan,
                    "errors": result.errors,
                }
                if snapshots.get("open_cpu") is not None and snapshots.get("close_cpu") is not None and images:
                    point["server_cpu_ms_per_image"] = (snapshots["close_cpu"] - snapshots["open_cpu"]) / images * 1e3
                if result.first_error:
                    point["first_error"] = result.first_error
                if step_models and "open" in snapshots and "close" in snapshots:
                    point["server_steps"] = br.statistics_delta(
                        snapshots["open"], snapshots["close"], step_models, result.window_s
                    )
                points.append(point)
                progress(
                    f"{label}: concurrency {concurrency}: {point['images_per_s']:.2f} images/s, "
                    f"p50 {point['p50_ms']:.1f} ms, p99 {point['p99_ms']:.1f} ms ({images} images)"
                )
        finally:
            pool.shutdown(wait=True)
            await client.close()
        return {"label": label, "source": self.source(path), "points": points, "error": error}

    def source(self, path: str) -> str:
        if path == "ensemble":
            return (
                "triton_vision_server.bench's asyncio gRPC load generator (tritonclient.grpc.aio), encoded bytes,"
                " one image per request, images in turn"
            )
        return (
            "the same load generator; each request decodes and preprocesses its image with OpenCV in a client"
            f" thread and sends FP32 tensors to the bare `{self.profile.model}`"
        )


# -- perf_analyzer --------------------------------------------------------------------------
def perf_analyzer_path(url: str, profile: Profile, image: BenchImage, concurrencies: Sequence[int], options) -> dict:
    import subprocess

    from .perf import perf_analyzer_command, perf_analyzer_csv, perf_analyzer_env

    label = "ensemble (perf_analyzer)"
    points: list[dict] = []
    error = ""
    with tempfile.TemporaryDirectory(prefix="bench-pa-") as work:
        work_dir = Path(work)
        image_path = work_dir / image.name
        image_path.write_bytes(image.data)
        try:
            env = perf_analyzer_env()
        except TritonVisionError as exc:
            return {"label": label, "source": "perf_analyzer", "points": [], "error": str(exc)}
        for concurrency in concurrencies:
            csv_path = work_dir / f"c{concurrency}.csv"
            command = perf_analyzer_command(
                image_path,
                work_dir / "data",
                model=profile.ensemble,
                url=url,
                concurrency=str(concurrency),
                measurement_ms=int(options.duration_s * 1000),
            ) + ["-f", str(csv_path), "--max-trials", "6", "--stability-percentage", "100"]
            progress(f"{label}: concurrency {concurrency} ...")
            try:
                run = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=options.max_point_s * 6 + 60, check=False
                )
            except subprocess.TimeoutExpired:
                error = f"perf_analyzer timed out at concurrency {concurrency}"
                break
            rows = perf_analyzer_csv(csv_path) if csv_path.is_file() else []
            if run.returncode != 0 or not rows:
                error = f"perf_analyzer exited {run.returncode}: {(run.stdout + run.stderr).strip()[-400:]}"
                progress(f"{label}: {error}")
                break
            row = rows[0]
            points.append(
                {
                    "concurrency": concurrency,
                    "images_per_s": row["Inferences/Second"],
                    "p50_ms": row.get("p50 latency", math.nan) / 1e3,
                    "p95_ms": row.get("p95 latency", math.nan) / 1e3,
                    "p99_ms": row.get("p99 latency", math.nan) / 1e3,
                    "request_bytes_per_image": math.nan,
                    "errors": 0,
                }
            )
            progress(f"{label}: concurrency {concurrency}: {row['Inferences/Second']:.2f} images/s")
    return {
        "label": label,
        "source": f"perf_analyzer (tritonclient 2.51 wheel) on one image ({image.name}, {image.format},"
        " its bytes as IMAGE), latencies from its CSV",
        "points": points,
        "error": error,
    }


# -- in-process -----------------------------------------------------------------------------
def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _batch(tensors: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([t[name] for t in tensors]) for name in tensors[0]}


def _repeat(run: Callable[[], Any], budget_s: float, least: int = 2) -> tuple[float, float]:
    """Median wall seconds and mean CPU seconds of ``run`` over at least ``least`` calls within ``budget_s``."""
    walls: list[float] = []
    cpus: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(walls) < least or time.perf_counter() < deadline:
        w, c = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
        if len(walls) >= 200:
            break
    return br.percentile(walls, 50), sum(cpus) / len(cpus)


def in_process(model_path: Path, profile: Profile, images: list[BenchImage], budget_s: float) -> tuple[dict, dict]:
    """The in-process ceiling (default threads) and the work bound's CPU seconds (one thread)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    batch = profile.in_process_batch
    chosen = [images[i % len(images)] for i in range(batch)]
    tensors = [profile.preprocess(i.data) for i in chosen]
    # Single-threaded preprocessing CPU per image (every image once, then repeated).
    progress("in-process: OpenCV preprocessing ...")
    prep_wall, prep_cpu = _repeat(lambda: [profile.preprocess(i.data) for i in images], budget_s / 4)
    prep_cpu_per_image = prep_cpu / len(images)

    progress(f"in-process: ONNX Runtime, default threads, batch 1 and {batch} ...")
    session = _session(model_path, 0)
    names = [o.name for o in session.get_outputs()][:1]
    session.run(names, _batch(tensors))
    single = tensors[0]
    session.run(names, single)
    single_wall, _ = _repeat(lambda: (profile.preprocess(chosen[0].data), session.run(names, single)), budget_s / 4)
    alone_single, _ = _repeat(lambda: session.run(names, single), budget_s / 8)
    batched = _batch(tensors)
    alone_wall, _ = _repeat(lambda: session.run(names, batched), budget_s / 4)
    full_wall, _ = _repeat(
        lambda: session.run(names, _batch([profile.preprocess(i.data) for i in chosen])), budget_s / 4, least=2
    )

    progress(f"in-process: ONNX Runtime, one thread, batch {batch} (CPU seconds for the work bound) ...")
    one = _session(model_path, 1)
    one.run(names, batched)
    _, model_cpu = _repeat(lambda: one.run(names, batched), budget_s / 4)
    model_cpu_per_image = model_cpu / batch
    ceiling = {
        "threads": f"intra_op_num_threads 0 = {cores} threads",
        "batch": batch,
        "images_per_s": batch / full_wall,
        "single_image_ms": single_wall * 1e3,
        "model_alone_images_per_s": batch / alone_wall,
        "model_alone_ms": alone_single * 1e3,
        "preprocess_wall_ms_per_image": prep_wall / len(images) * 1e3,
    }
    bound = {
        "cores": cores,
        "batch": batch,
        "preprocess_cpu_ms": prep_cpu_per_image * 1e3,
        "model_cpu_ms": model_cpu_per_image * 1e3,
        "images_per_s": br.work_bound(cores, prep_cpu_per_image, model_cpu_per_image),
        "how": "preprocessing: OpenCV, one thread, CPU seconds per image over every bench image; model: ONNX"
        f" Runtime with intra_op_num_threads=1, CPU seconds per image at batch {batch}",
    }
    progress(
        f"in-process: {ceiling['images_per_s']:.2f} images/s at batch {batch}, single image "
        f"{ceiling['single_image_ms']:.1f} ms; work bound {bound['images_per_s']:.2f} images/s"
    )
    return ceiling, bound


# -- the run --------------------------------------------------------------------------------
@dataclass
class BenchOptions:
    ensemble: str = t.CLASSIFICATION
    url: str | None = None
    model_repository: Path = Path("model_repository")
    images: tuple[Path, ...] = ()
    max_images: int = 8
    concurrency: tuple[int, ...] | None = None
    seed_concurrency: tuple[int, ...] | None = None
    duration_s: float = 4.0
    warmup_s: float = 1.5
    max_point_s: float = 120.0
    perf_analyzer: bool = True
    perf_analyzer_concurrency: tuple[int, ...] = (1, 4)
    out: Path = Path("out/bench")
    note: str = ""


def read_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def read_loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "-"


def machine_description() -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory = ""
    try:
        total_kb = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
        memory = f"{total_kb / 1024**2:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    return {"cores": cores, "cpu_model": read_cpu_model(), "memory": memory, "platform": platform.platform()}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for module in ("onnxruntime", "nvidia.dali", "tritonclient", "numpy", "cv2"):
        try:
            found[module] = __import__(module, fromlist=["__version__"]).__version__
        except (ImportError, AttributeError):
            found[module] = "-"
    return found


def run_bench(options: BenchOptions) -> dict[str, Any]:
    from .runtime import LocalTritonServer, ServerOptions, free_port

    if options.ensemble not in PROFILES:
        raise BenchError(f"unknown ensemble '{options.ensemble}' (known: {', '.join(PROFILES)})")
    profile = PROFILES[options.ensemble]
    repository = options.model_repository
    steps = ensemble_steps(repository, profile.ensemble)
    if options.url:  # a server that is not there is the first thing to say
        check_server(options.url, [profile.ensemble, *steps])
    model_path = repository / profile.model / "1" / "model.onnx"  # the in-process paths run this file
    if not model_path.is_file():
        raise BenchError(f"{model_path} is missing: run `triton-vision models prepare --model {profile.model}`")
    images = bench_images(options.images, options.max_images)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    clock = time.perf_counter()
    machine = machine_description()
    machine["loadavg_before"] = read_loadavg()
    if options.note:
        machine["note"] = options.note
    progress(
        f"{options.ensemble}: {len(images)} images, {machine['cores']} cores ({machine['cpu_model']}), "
        f"load {machine['loadavg_before']}"
    )
    server = None
    workdir = None
    try:
        if options.url:
            url = options.url
            how = "given with --url"
        else:
            workdir = tempfile.TemporaryDirectory(prefix="triton-vision-bench-")
            bench_repo = bench_repository(repository, profile.ensemble, Path(workdir.name) / "repository")
            server_options = ServerOptions(
                model_repository=bench_repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port()
            )
            progress(f"starting tritonserver on {server_options.grpc_url} ({', '.join(steps)}) ...")
            server = LocalTritonServer(server_options).start()
            server.wait_ready(timeout=300)
            url = server_options.grpc_url
            how = "started by the bench: the local runtime, this repository's configs"
        served = served_configs(url, [profile.ensemble, *steps])
        sweep = Sweep(url, options, images, profile, server.process.pid if server and server.process else None)
        paths: dict[str, dict] = {}
        paths["ensemble"] = asyncio.run(
            sweep.run(
                "ensemble", options.concurrency or profile.concurrency, f"the `{profile.ensemble}` ensemble", steps
            )
        )
        if options.perf_analyzer:
            paths["ensemble_perf_analyzer"] = perf_analyzer_path(
                url, profile, _median_jpeg(images), options.perf_analyzer_concurrency, options
            )
        paths["seed"] = asyncio.run(
            sweep.run(
                "seed",
                options.seed_concurrency or profile.seed_concurrency,
                "the seed's path: client OpenCV preprocessing, FP32 to the bare model",
                [profile.model],
            )
        )
        paths["seed"]["label"] = "the seed's path: client preprocessing, FP32 to the bare model"
    finally:
        if server is not None:
            progress("stopping tritonserver ...")
            server.stop()
        if workdir is not None:
            workdir.cleanup()
    ceiling, bound = in_process(model_path, profile, images, budget_s=max(4.0, options.duration_s * 2))
    machine["loadavg_after"] = read_loadavg()
    report: dict[str, Any] = {
        "schema": br.SCHEMA,
        "ensemble": profile.ensemble,
        "model": profile.model,
        "model_source": _model_source(repository, profile.model),
        "started": started,
        "elapsed_s": time.perf_counter() - clock,
        "machine": machine,
        "versions": versions(),
        "server": {"url": url, "how": how},
        "settings": {
            "duration_s": options.duration_s,
            "warmup_s": options.warmup_s,
            "max_point_s": options.max_point_s,
            "min_requests": profile.min_requests,
        },
        "served_configs": served,
        "images": [
            {"name": i.name, "format": i.format, "width": i.width, "height": i.height, "bytes": len(i.data)}
            for i in images
        ],
        "images_mean_bytes": sum(len(i.data) for i in images) / len(images),
        "paths": paths,
        "in_process": ceiling,
        "work_bound": bound,
    }
    report["served_line"] = instances_line(served)
    report["summary"] = br.summarise(report)
    report["targets"] = br.targets(profile.ensemble, report["summary"])
    return report


def _median_jpeg(images: list[BenchImage]) -> BenchImage:
    jpegs = sorted((i for i in images if i.format == "JPEG"), key=lambda i: len(i.data)) or images
    return jpegs[len(jpegs) // 2]


def _model_source(repository: Path, model: str) -> str:
    try:
        from .modelfiles import read_source

        source = read_source(repository, model)
        return source.describe() if source else "not recorded"
    except Exception as exc:  # noqa: BLE001 - informative only
        return f"unknown ({type(exc).__name__})"


def check_server(url: str, models: Sequence[str]) -> None:
    """A clear error unless the server at ``url`` answers and has every model ready."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    try:
        with grpcclient.InferenceServerClient(url) as client:
            if not client.is_server_live(client_timeout=10):
                raise BenchError(f"the server at {url} is not live")
            missing = [name for name in models if not client.is_model_ready(name, client_timeout=10)]
    except InferenceServerException as exc:
        raise BenchError(f"no Triton server answers at {url}: {exc.message()}") from exc
    if missing:
        raise BenchError(f"the server at {url} has no ready model {', '.join(missing)}")


def served_configs(url: str, models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What the server made of each config: instance groups (after Triton's defaults), batching, parameters."""
    import tritonclient.grpc as grpcclient

    found: dict[str, dict[str, Any]] = {}
    with grpcclient.InferenceServerClient(url) as client:
        for name in models:
            config = client.get_model_config(name, as_json=True).get("config", {})
            found[name] = {
                key: config[key]
                for key in ("instance_group", "dynamic_batching", "parameters", "optimization", "max_batch_size")
                if key in config
            }
            if "instance_group" in found[name]:
                found[name]["instance_group"] = [
                    {k: g.get(k) for k in ("count", "kind")} for g in found[name]["instance_group"]
                ]
            if "dynamic_batching" in found[name]:
                batching = found[name]["dynamic_batching"]
                found[name]["dynamic_batching"] = {
                    k: batching[k] for k in ("max_queue_delay_microseconds", "preferred_batch_size") if k in batching
                }
            if "optimization" in found[name]:
                found[name]["optimization"] = {"graph": found[name]["optimization"].get("graph", {})}
    return found


def instances_line(served: dict[str, dict[str, Any]]) -> str:
    """``model: 2 x KIND_CPU, delay 2000 us`` for each served model."""
    parts = []
    for name, config in served.items():
        groups = config.get("instance_group") or []
        count = " + ".join(f"{g.get('count', 1)} x {g.get('kind', '?')}" for g in groups) or "-"
        delay = config.get("dynamic_batching", {}).get("max_queue_delay_microseconds")
        threads = {
            k: v.get("string_value")
            for k, v in config.get("parameters", {}).items()
            if k in ("intra_op_thread_count", "inter_op_thread_count", "num_threads", "execution_mode")
        }
        extra = f", delay {delay} us" if delay is not None else ""
        extra += "".join(f", {k} {v}" for k, v in threads.items())
        parts.append(f"{name}: {count}{extra}")
    return "; ".join(parts)


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"bench-{report['ensemble']}"
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(report, indent=2, default=_json_default, allow_nan=True) + "\n")
    md_path = stem.with_suffix(".md")
    md_text = br.render_markdown(report)
    png_path = stem.with_suffix(".png")
    br.render_plot(report, png_path)
    figure = f"\n![throughput vs concurrency]({png_path.name})\n\n## Summary"
    md_path.write_text(md_text.replace("\n## Summary", figure, 1))
    return [md_path, json_path, png_path]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def parse_concurrency(text: str) -> tuple[int, ...]:
    """``1,2,4`` -> (1, 2, 4); every value an integer in 1..256."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise BenchError(f"--concurrency takes integers separated by commas, got '{text}'") from exc
    if not values or any(not 1 <= v <= 256 for v in values):
        raise BenchError(f"--concurrency values must be in 1..256, got '{text}'")
    return tuple(sorted(set(values)))


def cmd_bench(args) -> int:
    options = BenchOptions(
        ensemble=args.ensemble,
        url=args.url,
        model_repository=args.model_repository,
        images=tuple(args.images),
        max_images=args.max_images,
        concurrency=parse_concurrency(args.concurrency) if args.concurrency else None,
        seed_concurrency=parse_concurrency(args.seed_concurrency) if args.seed_concurrency else None,
        duration_s=args.duration,
        warmup_s=args.warmup,
        max_point_s=max(args.duration, args.max_point),
        perf_analyzer=not args.no_perf_analyzer,
        perf_analyzer_concurrency=parse_concurrency(args.perf_analyzer_concurrency),
        out=args.out,
        note=args.note,
    )
    if options.duration_s <= 0 or options.warmup_s < 0:
        raise BenchError("--duration must be positive and --warmup not negative")
    report = run_bench(options)
    written = write_report(report, options.out)
    summary = report["summary"]
    print(
        f"{report['ensemble']}: ensemble {summary['ensemble_best_images_per_s']:.2f} images/s "
        f"(c={summary['ensemble_best_concurrency']}), seed's path {summary['seed_best_images_per_s']:.2f}, "
        f"in-process {summary['in_process_images_per_s']:.2f}, work bound {summary['work_bound_images_per_s']:.2f}"
    )
    for row in report["targets"]:
        print(f"  {'met    ' if row['met'] else 'NOT MET'} {row['target']}: {row['measured']:.3f} ({row['goal']})")
    for path in written:
        print(f"wrote {path}")
    return 0


def add_parser(sub: Any, wrap: Callable) -> None:
    p = sub.add_parser(
        "bench",
        help="ensemble vs client-side preprocessing vs in-process vs the work bound; Markdown, JSON and PNG",
    )
    p.add_argument("--ensemble", choices=sorted(PROFILES), default=t.CLASSIFICATION)
    p.add_argument("--url", default=None, help="gRPC address of a running server (default: start one locally)")
    p.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    p.add_argument("--images", nargs="*", type=Path, default=[], help="image files (default: ../shared/images)")
    p.add_argument("--max-images", type=int, default=8)
    p.add_argument("--concurrency", default=None, help="ensemble sweep, e.g. 1,2,4,8,16 (default per ensemble)")
    p.add_argument("--seed-concurrency", default=None, help="the seed's path sweep (default per ensemble)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds measured per point (default 4)")
    p.add_argument("--warmup", type=float, default=1.5, help="seconds of warm-up per point (default 1.5)")
    p.add_argument("--max-point", type=float, default=120.0, help="at most this many seconds per point")
    p.add_argument("--no-perf-analyzer", action="store_true", help="skip the perf_analyzer points")
    p.add_argument("--perf-analyzer-concurrency", default="1,4")
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    p.add_argument("--note", default="", help="a remark stored in the report (e.g. what else ran)")
    p.set_defaults(func=wrap(cmd_bench))
