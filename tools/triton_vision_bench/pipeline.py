"""``triton-vision bench --ensemble PIPELINE``: a pipeline against the client-side way, in one run.

The client-side way is what a client does without a pipeline: a request to the pipeline's detector
ensemble, then it decodes the photo, keeps the objects of the pipeline's classes above its threshold
(at most its max_objects), cuts each box by the pipeline's rule and margin, encodes each crop as a
JPEG (quality 95) and sends the crops of the photo to the second ensemble in one request. Both ways
run in alternating rounds on the same server and the same photos, at the same concurrency. Per way:
images/s, bytes of tensors on the wire per photo, and CPU milliseconds per photo of the server's
process tree (when the bench started it) and of the client (this process).
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import triton_vision_contract as contract
from triton_vision_authoring.add_model.ensemble_spec import SpecError
from triton_vision_authoring.add_model.pipeline_spec import PipelineSpec, parse_pipeline_spec
from triton_vision_bench.messages import BenchUsageError, progress
from triton_vision_models.pipeline import crop_window

TIMEOUT_S = 60.0
JPEG_QUALITY = 95
WAYS = ("pipeline", "client-side")
ROWS = (
    ("images_per_s", "images/s"),
    ("bytes_per_image", "bytes on the wire per photo"),
    ("server_cpu_ms_per_image", "server CPU ms per photo"),
    ("client_cpu_ms_per_image", "client CPU ms per photo"),
)


def pipeline_spec(repository: Path, ensemble: str) -> PipelineSpec:
    kept = repository / ensemble / "spec.toml"
    if not kept.is_file():
        raise BenchUsageError(f"pipeline '{ensemble}' has no spec.toml in {repository} (add-model keeps it there)")
    try:
        return parse_pipeline_spec(kept.read_text(encoding="utf-8"), kept)
    except SpecError as exc:
        raise BenchUsageError(str(exc)) from None


class Wire:
    """Bytes of the tensors sent and received (protocol framing excluded: about the same for both)."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0


def _request(client, model: str, rows: Sequence[bytes], outputs: Sequence[str], parameters: dict, wire: Wire) -> dict:
    import tritonclient.grpc as grpc

    batch = np.zeros((len(rows), max(len(row) for row in rows)), np.uint8)
    for index, row in enumerate(rows):
        batch[index, : len(row)] = np.frombuffer(row, np.uint8)
    tensor = grpc.InferInput(contract.IMAGE, list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch)
    wanted = [grpc.InferRequestedOutput(name) for name in outputs]
    result = client.infer(model, [tensor], outputs=wanted, parameters=parameters, client_timeout=TIMEOUT_S)
    answer = {name: result.as_numpy(name) for name in outputs}
    wire.sent += batch.nbytes
    for value in answer.values():
        wire.received += sum(len(v) for v in value.reshape(-1)) if value.dtype == object else value.nbytes
    return answer


@dataclass(frozen=True)
class Ways:
    spec: PipelineSpec
    stage_task: str  # the second ensemble's: classification (asked for its top-1) or embedding

    @property
    def stage_parameters(self) -> dict:
        return {contract.TOP_K: 1} if self.stage_task == contract.CLASSIFICATION else {}

    def pipeline(self, client, data: bytes, wire: Wire) -> int:
        objects = tuple(contract.OBJECT_OUTPUTS[self.stage_task].values())
        outputs = [*contract.TASK_OUTPUTS[contract.PIPELINE], *objects]
        answer = _request(client, self.spec.name, [data], outputs, self.stage_parameters, wire)
        return int(answer[contract.COUNT][0, 0])

    def client_side(self, client, data: bytes, wire: Wire) -> int:
        import cv2

        detect = self.spec.detect
        outputs = [contract.BOXES, contract.LABELS, contract.COUNT]
        found = _request(client, detect.ensemble, [data], outputs, {"score_threshold": detect.score_threshold}, wire)
        count = int(found[contract.COUNT][0, 0])
        labels = [label.decode() for label in found[contract.LABELS][0][:count]]
        keep = [i for i, label in enumerate(labels) if detect.classes is None or label in detect.classes]
        keep = keep[: detect.max_objects]
        if not keep:
            return 0
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        height, width = image.shape[:2]
        crops = []
        for index in keep:
            top, bottom, left, right = crop_window(
                found[contract.BOXES][0, index], self.spec.then.margin, height, width
            )
            ok, encoded = cv2.imencode(".jpg", image[top:bottom, left:right], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise RuntimeError("OpenCV cannot encode a crop")
            crops.append(encoded.tobytes())
        outputs = list(contract.TASK_OUTPUTS[self.stage_task])
        _request(client, self.spec.then.ensemble, crops, outputs, self.stage_parameters, wire)
        return len(keep)


def _server_ticks(server_pid: int | None) -> int | None:
    from triton_vision_serving import procfs

    if server_pid is None:
        return None
    stats = procfs.all_stats()
    return sum(stats[pid].cpu_ticks for pid in procfs.tree(server_pid, stats) if pid in stats)


def _client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(way: Callable, url: str, server_pid: int | None, images: Sequence[bytes], concurrency: int) -> dict:
    import tritonclient.grpc as grpc

    from triton_vision_serving.procfs import TICKS_PER_S

    clients = [grpc.InferenceServerClient(url) for _ in range(concurrency)]
    wire = Wire()
    ticks, cpu, start = _server_ticks(server_pid), _client_cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        objects = sum(pool.map(lambda item: way(clients[item[0] % concurrency], item[1], wire), enumerate(images)))
    elapsed = time.perf_counter() - start
    after = _server_ticks(server_pid)
    n = len(images)
    server_ms = 1000 * (after - ticks) / TICKS_PER_S / n if ticks is not None and after is not None else math.nan
    return {
        "images": n,
        "objects": objects,
        "images_per_s": n / elapsed,
        "bytes_per_image": (wire.sent + wire.received) / n,
        "server_cpu_ms_per_image": server_ms,
        "client_cpu_ms_per_image": 1000 * (_client_cpu_s() - cpu) / n,
    }


def compare(
    spec: PipelineSpec,
    stage_task: str,
    url: str,
    server_pid: int | None,
    photos: Sequence[bytes],
    *,
    images: int,
    rounds: int,
    concurrency: int,
) -> dict[str, Any]:
    """Both ways, ``rounds`` alternating rounds of ``images`` photos each: every round, and the medians."""
    ways = Ways(spec, stage_task)
    run = {"pipeline": ways.pipeline, "client-side": ways.client_side}
    sent = [photos[i % len(photos)] for i in range(images)]
    for way in run.values():  # warm-up: every model loaded and run once
        measure(way, url, server_pid, photos, 1)
    results: dict[str, list[dict]] = {name: [] for name in WAYS}
    for index in range(rounds):
        for name in WAYS if index % 2 == 0 else tuple(reversed(WAYS)):
            progress(f"round {index + 1}/{rounds}: {name}, {images} photos at concurrency {concurrency} ...")
            results[name].append(measure(run[name], url, server_pid, sent, concurrency))
    median = {
        name: {key: float(np.median([r[key] for r in runs])) for key in runs[0]} for name, runs in results.items()
    }
    return {
        "ensemble": spec.name,
        "detector": spec.detect.ensemble,
        "second_stage": spec.then.ensemble,
        "concurrency": concurrency,
        "rounds": results,
        "median": median,
    }


def table(report: dict[str, Any]) -> list[str]:
    pipe, peer = report["median"]["pipeline"], report["median"]["client-side"]
    lines = ["| | pipeline | client-side | ratio |", "| --- | --- | --- | --- |"]
    for key, label in ROWS:
        ratio = pipe[key] / peer[key] if peer[key] else math.nan
        lines.append(f"| {label} | {pipe[key]:,.1f} | {peer[key]:,.1f} | {ratio:.2f}x |")
    both = [pipe["server_cpu_ms_per_image"] + pipe["client_cpu_ms_per_image"]]
    both.append(peer["server_cpu_ms_per_image"] + peer["client_cpu_ms_per_image"])
    lines.append(f"| all CPU ms per photo | {both[0]:,.1f} | {both[1]:,.1f} | {both[0] / both[1]:.2f}x |")
    return lines


def run_pipeline_bench(
    repository: Path,
    ensemble: str,
    url: str | None,
    photos: Sequence[bytes],
    out: Path,
    *,
    images: int = 36,
    rounds: int = 3,
    concurrency: int = 2,
) -> list[Path]:
    """Compare, print the table, write ``out/<ensemble>-pipeline.{json,md}``; the files written."""
    from triton_vision_bench.profiles import load_repository
    from triton_vision_bench.run import local_server

    spec = pipeline_spec(repository, ensemble)
    found = load_repository(repository)
    stage_task = found[spec.then.ensemble].task if spec.then.ensemble in found else None
    if stage_task not in contract.OBJECT_OUTPUTS:
        raise BenchUsageError(
            f"pipeline '{ensemble}': its second ensemble '{spec.then.ensemble}' is not in {repository}"
        )
    with contextlib.ExitStack() as stack:
        server_pid = None
        if url is None:
            url, server_pid, _ = stack.enter_context(local_server(repository))
        report = compare(
            spec, stage_task, url, server_pid, photos, images=images, rounds=rounds, concurrency=concurrency
        )
    lines = [
        f"{ensemble}: {images} photos x {rounds} rounds at concurrency {concurrency} (medians): the pipeline against "
        f"'{spec.detect.ensemble}', crops re-encoded, '{spec.then.ensemble}'",
        "",
        *table(report),
    ]
    if server_pid is None:
        lines.append("(server CPU not measured: the server was given with --url)")
    print("\n".join(lines))
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{ensemble}-pipeline.json", out / f"{ensemble}-pipeline.md"]
    written[0].write_text(json.dumps(report, indent=2), encoding="utf-8")
    written[1].write_text("\n".join([f"# {lines[0]}", *lines[1:]]) + "\n", encoding="utf-8")
    return written
