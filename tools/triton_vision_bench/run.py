"""One bench run: the profile from the repository, a server (started here, or ``--url``), the
ensemble's sweep, perf_analyzer's points, the client-side-preprocessing baseline, in-process, and the report's dict."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import triton_vision_contract as contract
from triton_vision_bench import report as br
from triton_vision_bench.agreement import compare_detectors
from triton_vision_bench.images import BenchImage, bench_images, median_jpeg
from triton_vision_bench.in_process import in_process
from triton_vision_bench.machine import machine_description, read_loadavg, versions
from triton_vision_bench.messages import BenchError, progress
from triton_vision_bench.options import BenchOptions
from triton_vision_bench.peer import TASKS as PEER_TASKS
from triton_vision_bench.peer_sweep import PEER, peer_path
from triton_vision_bench.perf_analyzer import perf_analyzer_path
from triton_vision_bench.profiles import Profile, load_repository, profile
from triton_vision_bench.repository import bench_repository
from triton_vision_bench.served import check_server, instances_line, model_source, served_configs
from triton_vision_bench.sweep import BASELINE, ENSEMBLE, REPEATS, Sweep
from triton_vision_serving.server_config import describe_size

SERVER_START_TIMEOUT_S = 300


@contextlib.contextmanager
def local_server(
    served_repository: Path, cache_size: int = 0, *, fuse: bool = True
) -> Iterator[tuple[str, int | None, Path]]:
    """A local tritonserver on ``served_repository``: (its gRPC address, its pid, the repository it
    loads: the fused one); stopped afterwards."""
    from triton_vision_serving.runtime import LocalTritonServer, ServerOptions

    server_options = ServerOptions.on_free_ports(served_repository, cache_size=cache_size, fuse=fuse)
    cache = f", response cache {describe_size(cache_size)}" if cache_size else ""
    progress(f"starting tritonserver on {server_options.grpc_url}{cache} ...")
    server = LocalTritonServer(server_options).start()
    try:
        server.wait_ready(timeout=SERVER_START_TIMEOUT_S)
        yield server_options.grpc_url, server.process.pid if server.process else None, server.served_repository
    finally:
        progress("stopping tritonserver ...")
        server.stop()


def is_fused(url: str, ensemble: str) -> bool:
    """Whether the server runs ``ensemble`` fused (``serve``'s default: one model, no step statistics)."""
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(url) as client:
        config = client.get_model_config(ensemble, as_json=True).get("config", {})
    return config.get("backend") == contract.FUSED_BACKEND


def _served_paths(
    options: BenchOptions, chosen: Profile, images: list[BenchImage], served_repository: Path | None
) -> tuple[dict[str, dict], str, str, dict[str, dict[str, Any]]]:
    """The ensemble's sweep, perf_analyzer's points and the baseline, on one server (no cache)."""
    steps = list(chosen.steps)
    with contextlib.ExitStack() as stack:
        loaded: Path | None = None
        if served_repository is None:
            url, server_pid, how = str(options.url), None, "given with --url"
        else:
            fuse = not options.separate_steps
            url, server_pid, loaded = stack.enter_context(local_server(served_repository, fuse=fuse))
            shape = "each ensemble fused (its steps in one process)" if fuse else "each step its own process"
            how = f"started by the bench: the local runtime, this repository's configs, {shape}"
        served = served_configs(url, [chosen.ensemble, *steps])
        if is_fused(url, chosen.ensemble):  # the steps run inside the ensemble's own model
            steps = [chosen.ensemble]
        sweep = Sweep(url, options, images, chosen, server_pid, loaded, process_order=steps)
        paths: dict[str, dict] = {}
        paths[ENSEMBLE] = asyncio.run(
            sweep.run(
                ENSEMBLE, options.concurrency or chosen.settings.concurrency, f"the `{chosen.ensemble}` ensemble", steps
            )
        )
        if options.perf_analyzer:
            paths["ensemble_perf_analyzer"] = perf_analyzer_path(
                url, chosen, median_jpeg(images), options.perf_analyzer_concurrency, options
            )
        paths[BASELINE] = asyncio.run(
            sweep.run(
                BASELINE,
                options.baseline_concurrency or chosen.settings.baseline_concurrency,
                "the baseline: client OpenCV preprocessing, FP32 to the bare model",
                [chosen.model],
            )
        )
        paths[BASELINE]["label"] = "the client-side-preprocessing baseline: FP32 to the bare model"
    return paths, url, how, served


def _repeats_path(
    options: BenchOptions, chosen: Profile, images: list[BenchImage], served_repository: Path | None, url: str
) -> dict:
    """The repeated-image workload on a server with a response cache (``--url``: that server, as it is)."""
    concurrency = options.repeat_concurrency or (1, max(options.concurrency or chosen.settings.concurrency))
    label = f"the `{chosen.ensemble}` ensemble, half the requests repeating an image (response cache)"
    with contextlib.ExitStack() as stack:
        server_pid, loaded = None, None
        if served_repository is not None:
            fuse = not options.separate_steps
            url, server_pid, loaded = stack.enter_context(
                local_server(served_repository, options.cache_size, fuse=fuse)
            )
        sweep = Sweep(url, options, images, chosen, server_pid, loaded)
        return asyncio.run(sweep.run(REPEATS, tuple(sorted(set(concurrency))), label, list(chosen.steps)))


def run_bench(options: BenchOptions) -> dict[str, Any]:
    options.check()
    repository = options.model_repository
    chosen = profile(load_repository(repository), options.ensemble)
    if options.url:  # a server that is not there is the first thing to say
        check_server(options.url, [chosen.ensemble, *chosen.steps])
    if not chosen.model_path.is_file():  # the in-process paths run this file
        raise BenchError(f"{chosen.model_path} is missing: run `triton-vision models prepare --model {chosen.model}`")
    images = bench_images(options.images, options.max_images, options.photos)
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
    workdir = None
    served_repository: Path | None = None
    if not options.url:
        workdir = tempfile.TemporaryDirectory(prefix="triton-vision-bench-")
        served_repository = bench_repository(repository, chosen, Path(workdir.name) / "repository")
    try:
        paths, url, how, served = _served_paths(options, chosen, images, served_repository)
        if options.repeats:
            paths[REPEATS] = _repeats_path(options, chosen, images, served_repository, url)
        if options.peer and chosen.task in PEER_TASKS:
            concurrencies = options.concurrency or chosen.settings.concurrency
            paths[PEER] = peer_path(repository, chosen.ensemble, options, images, concurrencies)
    finally:
        if workdir is not None:
            workdir.cleanup()
    ceiling, bound = in_process(chosen, images, budget_s=max(4.0, options.duration_s * 2))
    detectors = compare_detectors(chosen, images, options.compare_onnx) if options.compare_onnx else None
    machine["loadavg_after"] = read_loadavg()
    report: dict[str, Any] = {
        "schema": br.SCHEMA,
        "ensemble": chosen.ensemble,
        "task": chosen.task,
        "model": chosen.model,
        "model_source": model_source(repository, chosen.model),
        "started": started,
        "elapsed_s": time.perf_counter() - clock,
        "machine": machine,
        "versions": versions(),
        "server": {"url": url, "how": how, "cache_size": options.cache_size if options.repeats else 0},
        "settings": {
            "duration_s": options.duration_s,
            "warmup_s": options.warmup_s,
            "max_point_s": options.max_point_s,
            "min_requests": chosen.settings.min_requests,
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
    if detectors is not None:
        report["detectors"] = detectors
    report["served_line"] = instances_line(served)
    report["summary"] = br.summarise(report)
    report["targets"] = br.targets(chosen.task, report["summary"])
    return report
