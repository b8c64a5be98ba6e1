"""In the bench process, on the same images and ``model.onnx``: the reference preprocessing +
ONNX Runtime (the ceiling without serving), one image's latency, the model alone on ready
tensors, and the work bound's CPU seconds per image (one thread each)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from triton_vision_bench import report as br
from triton_vision_bench.images import BenchImage
from triton_vision_bench.machine import cores
from triton_vision_bench.messages import progress
from triton_vision_bench.profiles import Profile

REPEATS_AT_MOST = 200


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: torchvision exports warn about subgraph names at load (~120 lines)
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
        if len(walls) >= REPEATS_AT_MOST:
            break
    return br.percentile(walls, 50), sum(cpus) / len(cpus)


def in_process(profile: Profile, images: list[BenchImage], budget_s: float) -> tuple[dict, dict]:
    """The in-process ceiling (default threads) and the work bound's CPU seconds (one thread)."""
    batch = profile.settings.in_process_batch
    chosen = [images[i % len(images)] for i in range(batch)]
    tensors = [profile.preprocess(i.data) for i in chosen]
    # Single-threaded preprocessing CPU per image (every image once, then repeated).
    progress("in-process: OpenCV preprocessing ...")
    prep_wall, prep_cpu = _repeat(lambda: [profile.preprocess(i.data) for i in images], budget_s / 4)
    prep_cpu_per_image = prep_cpu / len(images)

    progress(f"in-process: ONNX Runtime, default threads, batch 1 and {batch} ...")
    session = _session(profile.model_path, 0)
    names = [o.name for o in session.get_outputs()][:1]
    session.run(names, _batch(tensors))
    single = tensors[0]
    session.run(names, single)
    # One image at a time, the images in turn (as the ensemble's sweep sends them): the median over them.
    turn = itertools.cycle(images)
    single_wall, _ = _repeat(lambda: session.run(names, profile.preprocess(next(turn).data)), budget_s / 4)
    alone_single, _ = _repeat(lambda: session.run(names, single), budget_s / 8)
    batched = _batch(tensors)
    alone_wall, _ = _repeat(lambda: session.run(names, batched), budget_s / 4)
    full_wall, _ = _repeat(
        lambda: session.run(names, _batch([profile.preprocess(i.data) for i in chosen])), budget_s / 4, least=2
    )

    progress(f"in-process: ONNX Runtime, one thread, batch {batch} (CPU seconds for the work bound) ...")
    one = _session(profile.model_path, 1)
    one.run(names, batched)
    _, model_cpu = _repeat(lambda: one.run(names, batched), budget_s / 4)
    model_cpu_per_image = model_cpu / batch
    ceiling = {
        "threads": f"intra_op_num_threads 0 = {cores()} threads",
        "batch": batch,
        "images_per_s": batch / full_wall,
        "single_image_ms": single_wall * 1e3,
        "model_alone_images_per_s": batch / alone_wall,
        "model_alone_ms": alone_single * 1e3,
        "preprocess_wall_ms_per_image": prep_wall / len(images) * 1e3,
    }
    bound = {
        "cores": cores(),
        "batch": batch,
        "preprocess_cpu_ms": prep_cpu_per_image * 1e3,
        "model_cpu_ms": model_cpu_per_image * 1e3,
        "images_per_s": br.work_bound(cores(), prep_cpu_per_image, model_cpu_per_image),
        "how": "preprocessing: OpenCV, one thread, CPU seconds per image over every bench image; model: ONNX"
        f" Runtime with intra_op_num_threads=1, CPU seconds per image at batch {batch}",
    }
    progress(
        f"in-process: {ceiling['images_per_s']:.2f} images/s at batch {batch}, single image "
        f"{ceiling['single_image_ms']:.1f} ms; work bound {bound['images_per_s']:.2f} images/s"
    )
    return ceiling, bound
