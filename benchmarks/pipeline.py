"""Benchmark: a pipeline (detect, then classify each object, in one request) against the client-side way.

``python -m benchmarks.pipeline [--images 48] [--rounds 3] [--concurrency 2]``

Writes the pets_in_scene example (the data folder's real YOLOv8n and the pets head on the real
MobileNetV2; ``examples/pets_in_scene``) into a scratch repository and serves it. Then, in
alternating rounds on the same server and the same photos (kitten.jpg, dog.jpg and scikit-image's
chelsea: one pet each):

- **pipeline**: one request per photo to ``pets_in_scene``;
- **client-side**: what a client does without one: a request to ``yolo``, then it decodes the photo,
  keeps the cats and dogs above the same threshold, cuts each box by the same rule, encodes each crop
  as a JPEG (quality 95) and sends all crops of the photo to ``pets`` in one request.

Both at the same concurrency. Per way: images/s, bytes on the wire per photo (request and response
tensors), and CPU milliseconds per photo of the server's process tree and of this client process.
Prints the table and the ratios; writes ``out/bench-pipeline.json``. Bounded: each round's photos
are fixed in count, each request has a 60 s timeout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
THRESHOLD = 0.4  # the example's [detect] score_threshold
PETS = {15, 16}  # cat, dog: the example's [detect] classes (Ultralytics' ids)
TIMEOUT_S = 60.0


def photos() -> list[bytes]:
    import cv2
    from skimage import data

    from tests.conftest import SHARED

    found = [(SHARED / "images" / name).read_bytes() for name in ("kitten.jpg", "dog.jpg")]
    ok, chelsea = cv2.imencode(".jpg", cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return [*found, chelsea.tobytes()]


def build(workdir: Path) -> Path:
    """The example's repository, written by its README's commands (as a user would)."""
    from tests.conftest import SHARED

    examples = workdir / "examples"
    shutil.copytree(ROOT / "examples", examples)
    repository = workdir / "model_repository"
    repository.mkdir()
    shutil.copy(SHARED / "models" / "yolov8n_int8_320.onnx", examples / "pets_in_scene")
    binary = Path(sys.executable).parent / "triton-vision"
    env = {**os.environ, "TRITON_VISION_DATA": str(SHARED)}
    subprocess.run([sys.executable, str(examples / "pets" / "make_pets.py")], check=True, env=env, capture_output=True)
    for spec in ("pets/pets.toml", "pets_in_scene/yolo.toml", "pets_in_scene/pets_in_scene.toml"):
        command = [str(binary), "add-model", str(examples / spec), "--model-repository", str(repository)]
        subprocess.run(command, check=True, capture_output=True)
    return repository


class Wire:
    """Bytes of tensors sent and received (the payload: protocol framing excluded, the same for both)."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0


def request(client, model: str, rows: list[bytes], outputs: list[str], parameters: dict, wire: Wire) -> dict:
    import tritonclient.grpc as grpc

    width = max(len(row) for row in rows)
    batch = np.zeros((len(rows), width), np.uint8)
    for index, row in enumerate(rows):
        batch[index, : len(row)] = np.frombuffer(row, np.uint8)
    tensor = grpc.InferInput("IMAGE", list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch)
    wanted = [grpc.InferRequestedOutput(name) for name in outputs]
    result = client.infer(model, [tensor], outputs=wanted, parameters=parameters, client_timeout=TIMEOUT_S)
    answer = {name: result.as_numpy(name) for name in outputs}
    wire.sent += batch.nbytes
    wire.received += sum(sum(len(v) for v in a.reshape(-1)) if a.dtype == object else a.nbytes for a in answer.values())
    return answer


def pipeline_way(client, data: bytes, wire: Wire) -> int:
    outputs = ["BOXES", "SCORES", "CLASS_IDS", "LABELS", "COUNT", "OBJECT_CLASS_IDS", "OBJECT_SCORES", "OBJECT_LABELS"]
    answer = request(client, "pets_in_scene", [data], outputs, {"top_k": 1}, wire)
    return int(answer["COUNT"][0, 0])


def client_side_way(client, data: bytes, wire: Wire) -> int:
    import cv2

    from triton_vision_models.pipeline import crop_window

    found = request(
        client, "yolo", [data], ["BOXES", "SCORES", "CLASS_IDS", "COUNT"], {"score_threshold": THRESHOLD}, wire
    )
    count = int(found["COUNT"][0, 0])
    keep = [i for i in range(count) if int(found["CLASS_IDS"][0, i]) in PETS]
    if not keep:
        return 0
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    height, width = image.shape[:2]
    crops = []
    for index in keep:
        top, bottom, left, right = crop_window(found["BOXES"][0, index], 0.0, height, width)
        ok, encoded = cv2.imencode(".jpg", image[top:bottom, left:right], [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        crops.append(encoded.tobytes())
    request(client, "pets", crops, ["CLASS_IDS", "SCORES", "LABELS"], {"top_k": 1}, wire)
    return len(keep)


def server_ticks(server) -> int:
    from triton_vision_serving import procfs

    stats = procfs.all_stats()
    return sum(stats[pid].cpu_ticks for pid in procfs.tree(server.process.pid, stats) if pid in stats)


def client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(way, url: str, server, images: list[bytes], concurrency: int) -> dict[str, Any]:
    import tritonclient.grpc as grpc

    from triton_vision_serving.procfs import TICKS_PER_S

    clients = [grpc.InferenceServerClient(url) for _ in range(concurrency)]
    wire = Wire()
    ticks, cpu, start = server_ticks(server), client_cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        objects = sum(pool.map(lambda item: way(clients[item[0] % concurrency], item[1], wire), enumerate(images)))
    elapsed = time.perf_counter() - start
    server_s = (server_ticks(server) - ticks) / TICKS_PER_S
    n = len(images)
    return {
        "images": n,
        "objects": objects,
        "images_per_s": n / elapsed,
        "bytes_per_image": (wire.sent + wire.received) / n,
        "sent_per_image": wire.sent / n,
        "server_cpu_ms_per_image": 1000 * server_s / n,
        "client_cpu_ms_per_image": 1000 * (client_cpu_s() - cpu) / n,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48, help="photos per round and way (default 48)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight (default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench-pipeline.json")
    args = parser.parse_args(argv)
    from tests.integration.conftest import running_server

    base = photos()
    images = [base[i % len(base)] for i in range(args.images)]
    ways = {"pipeline": pipeline_way, "client-side": client_side_way}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in ways}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        repository = build(Path(scratch))
        with running_server(repository) as server:
            url = server.options.grpc_url
            for way in ways.values():  # warm-up: every model loaded and run once
                measure(way, url, server, base, 1)
            for round_index in range(args.rounds):
                order = list(ways) if round_index % 2 == 0 else list(reversed(ways))
                for name in order:
                    results[name].append(measure(ways[name], url, server, images, args.concurrency))
    summary = {
        name: {key: float(np.median([r[key] for r in runs])) for key in runs[0]} for name, runs in results.items()
    }
    pipe, peer = summary["pipeline"], summary["client-side"]
    print(f"{len(images)} photos x {args.rounds} rounds, concurrency {args.concurrency} (medians)")
    print(f"{'':24s} {'pipeline':>12s} {'client-side':>12s} {'ratio':>8s}")
    for key, label in (
        ("images_per_s", "images/s"),
        ("bytes_per_image", "bytes on the wire/image"),
        ("server_cpu_ms_per_image", "server CPU ms/image"),
        ("client_cpu_ms_per_image", "client CPU ms/image"),
    ):
        ratio = pipe[key] / peer[key] if peer[key] else math.nan
        print(f"{label:24s} {pipe[key]:12.1f} {peer[key]:12.1f} {ratio:7.2f}x")
    total = (pipe["server_cpu_ms_per_image"] + pipe["client_cpu_ms_per_image"]) / (
        peer["server_cpu_ms_per_image"] + peer["client_cpu_ms_per_image"]
    )
    print(f"{'all CPU ms/image':24s} {'':12s} {'':12s} {total:7.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rounds": results, "median": summary, "concurrency": args.concurrency}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
