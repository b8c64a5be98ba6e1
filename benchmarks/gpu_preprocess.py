"""Benchmark: the three DALI preprocessing pipelines, CPU decoding vs "mixed" (nvJPEG) decoding.

Run on a GPU machine: ``python -m benchmarks.gpu_preprocess``. Prints images per second for each
pipeline on both paths in one run and their ratio (the CPU path is the baseline). Both use the
configs' num_threads; the batch is the configs' max_batch_size of real JPEG photos.
"""

from __future__ import annotations

import itertools
import time

from tests.gpu.gpu_support import cuda_device_count, jpeg_photos, runner
from triton_vision_models import tensors as t
from triton_vision_models.model_config import RequestData

ROUNDS = 20


def throughput(dali, batch) -> float:
    request = [RequestData({t.IMAGE: batch})]
    for _ in range(3):
        dali(request)
    start = time.perf_counter()
    for _ in range(ROUNDS):
        dali(request)
    return ROUNDS * batch.shape[0] / (time.perf_counter() - start)


def main() -> None:
    import numpy as np

    photos = list(jpeg_photos().values())
    print(f"CUDA devices: {cuda_device_count()}")
    print(f"{'pipeline':28s} {'batch':>5s} {'CPU img/s':>10s} {'GPU img/s':>10s} {'GPU/CPU':>8s}")
    for model in (t.CLASSIFICATION_PREPROCESS, t.DETECTION_PREPROCESS, t.SEGMENTATION_PREPROCESS):
        cpu, gpu = runner(model, gpu=False), runner(model, gpu=True)
        size = cpu.config.max_batch_size
        chosen = list(itertools.islice(itertools.cycle(photos), size))
        batch = np.zeros((size, max(map(len, chosen))), dtype=np.uint8)
        for index, data in enumerate(chosen):
            batch[index, : len(data)] = np.frombuffer(data, dtype=np.uint8)
        on_cpu, on_gpu = throughput(cpu, batch), throughput(gpu, batch)
        print(f"{model:28s} {size:5d} {on_cpu:10.1f} {on_gpu:10.1f} {on_gpu / on_cpu:8.2f}")


if __name__ == "__main__":
    main()
