"""The peer (:mod:`.peer`) measured as the ensemble is: started here, the same photos, the same
load generator (:func:`.load.drive`) over the same concurrencies, an HTTP POST per image (aiohttp,
a connection per request), and CPU per image of the peer's process tree over each window."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from triton_vision_bench import cpu
from triton_vision_bench import report as br
from triton_vision_bench.images import BenchImage
from triton_vision_bench.load import drive
from triton_vision_bench.messages import BenchError, progress
from triton_vision_bench.options import BenchOptions
from triton_vision_bench.peer import PATH
from triton_vision_serving import procfs
from triton_vision_serving.ports import free_port

PEER = "peer"  # the report's path key
START_TIMEOUT_S = 120
MAIN, WORKER, OTHER = "peer: uvicorn main process", "peer: worker", "peer: other (multiprocessing's tracker)"
HEADER_BYTES = 150  # an HTTP/1.1 POST's request line and headers as aiohttp sends them, about


def label(workers: int) -> str:
    return f"the peer: uvicorn + Starlette, {workers} workers, OpenCV + ONNX Runtime (1 thread each), HTTP"


def source(workers: int) -> str:
    return (
        f"`python -m triton_vision_bench.peer`: a Starlette app under uvicorn with {workers} worker processes, one"
        " encoded image per HTTP POST, decoded with OpenCV, preprocessed by the ensemble's spec rule, ONNX Runtime"
        " (one intra-op thread) on the same file, the task's post-processing, JSON back; driven by the same load"
        " generator with aiohttp (a new connection per request, so that uvicorn's workers share the load)"
    )


@contextlib.contextmanager
def peer_server(repository: Path, ensemble: str, workers: int, device: str = "cpu") -> Iterator[tuple[str, int]]:
    """The peer on a free loopback port: (its URL, its main process id); stopped afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "triton_vision_bench.peer", "--repository", str(repository)]
    command += ["--ensemble", ensemble, "--port", str(port), "--workers", str(workers), "--device", device]
    progress(f"starting the peer on 127.0.0.1:{port} ({workers} workers) ...")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, workers)
        yield url, process.pid
    finally:
        progress("stopping the peer ...")
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen, workers: int) -> None:
    """Until every worker has loaded its model: ``workers`` health answers in a row from different pids
    cannot be told apart over HTTP, so wait for the health answer, then for the tree's workers."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the peer exited with status {process.returncode} before it answered")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        time.sleep(0.3)
    else:
        raise BenchError(f"the peer did not answer at {url} within {START_TIMEOUT_S} s")
    time.sleep(2.0 if workers > 1 else 0)  # the other workers load the same model alongside


def tree(pid: int) -> list[cpu.ProcessSample]:
    """The peer's processes now: the main process and its workers (uvicorn's spawned children)."""
    stats = procfs.all_stats()
    samples = []
    for p in procfs.tree(pid, stats):
        if (s := stats.get(p)) is None:
            continue
        name = MAIN if p == pid else (WORKER if "spawn_main" in " ".join(procfs.cmdline(p)) else OTHER)
        samples.append(cpu.ProcessSample(p, name, "server" if p == pid else "worker", s.cpu_ticks, s.rss_bytes))
    return samples


async def sweep(
    url: str, pid: int, options: BenchOptions, images: Sequence[BenchImage], concurrencies: Sequence[int], workers: int
) -> dict[str, Any]:
    import aiohttp

    points: list[dict[str, Any]] = []
    error = ""
    response_sizes: list[int] = []
    # A connection per request: uvicorn's workers share one listening socket and a keep-alive connection
    # stays with the worker that accepted it; the kernel handed the sweep's few long-lived connections to
    # one worker (measured: 415 CPU ticks against 2), which would measure one core, not the peer.
    connector = aiohttp.TCPConnector(limit=max(concurrencies), force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:

        async def send(index: int) -> None:
            image = images[index % len(images)]
            async with session.post(url + PATH, data=image.data) as answer:
                body = await answer.read()
                if answer.status != 200:
                    raise BenchError(f"the peer answered {answer.status}: {body[:200]!r}")
            if len(response_sizes) < 2 * len(images):
                response_sizes.append(len(body))

        for concurrency in concurrencies:
            snapshots: dict[str, list[cpu.ProcessSample]] = {}

            async def on_window(event: str, _snapshots=snapshots) -> None:
                _snapshots[event] = tree(pid)

            progress(f"the peer: concurrency {concurrency} ...")
            try:
                result = await drive(
                    send,
                    concurrency,
                    warmup_s=options.warmup_s,
                    duration_s=options.duration_s,
                    min_requests=8,
                    max_point_s=options.max_point_s,
                    on_window=on_window,
                )
            except BenchError as exc:
                error = str(exc)
                progress(f"the peer: {exc}")
                break
            point = _point(result, images, response_sizes, snapshots)
            points.append(point)
            progress(
                f"the peer: concurrency {concurrency}: {point['images_per_s']:.2f} images/s, "
                f"p50 {point['p50_ms']:.1f} ms, "
                f"server CPU {point.get('server_cpu_ms_per_image', math.nan):.1f} ms/image"
            )
    return {"label": label(workers), "source": source(workers), "points": points, "error": error}


def _point(result, images: Sequence[BenchImage], response_sizes: list[int], snapshots) -> dict[str, Any]:
    count = len(result.latencies_s)
    point: dict[str, Any] = {
        "concurrency": result.concurrency,
        "images": count,
        "window_s": result.window_s,
        "images_per_s": count / result.window_s if result.window_s > 0 else math.nan,
        **br.latency_summary(result.latencies_s),
        "request_bytes_per_image": HEADER_BYTES + sum(len(i.data) for i in images) / len(images),
        "response_bytes_per_image": sum(response_sizes) / len(response_sizes) if response_sizes else math.nan,
        "client_cpu_ms_per_image": result.client_cpu_s / count * 1e3 if count else math.nan,
        "errors": result.errors,
    }
    client = procfs.read_stat(os.getpid())
    if client is not None:
        point["client_rss_mb"] = client.rss_bytes / 2**20
    if "open" in snapshots and "close" in snapshots and count:
        point["server_processes"] = cpu.per_image(snapshots["open"], snapshots["close"], count)
        point["server_cpu_ms_per_image"] = sum(row["cpu_ms_per_image"] for row in point["server_processes"])
    if result.first_error:
        point["first_error"] = result.first_error
    return point


def peer_path(
    repository: Path, ensemble: str, options: BenchOptions, images: Sequence[BenchImage], concurrencies: Sequence[int]
) -> dict[str, Any]:
    """The peer started, measured over ``concurrencies`` and stopped: the report's path."""
    with peer_server(repository, ensemble, options.peer_workers, options.peer_device) as (url, pid):
        found = asyncio.run(sweep(url, pid, options, images, concurrencies, options.peer_workers))
    if options.peer_device != "cpu":
        found["label"] += f", ONNX Runtime on {options.peer_device.upper()}"
    return found
