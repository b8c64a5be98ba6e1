"""One bench run: the profile from the repository, a server (started here, or ``--url``), the
ensemble's sweep, perf_analyzer's points, the seed's path, in-process, and the report's dict."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import report as br
from .images import bench_images, median_jpeg
from .in_process import in_process
from .machine import machine_description, read_loadavg, versions
from .messages import BenchError, progress
from .options import BenchOptions
from .perf_analyzer import perf_analyzer_path
from .profiles import load_repository, profile
from .repository import bench_repository
from .served import check_server, instances_line, model_source, served_configs
from .sweep import ENSEMBLE, SEED, Sweep

SERVER_START_TIMEOUT_S = 300


def run_bench(options: BenchOptions) -> dict[str, Any]:
    from ..runtime import LocalTritonServer, ServerOptions, free_port

    options.check()
    repository = options.model_repository
    chosen = profile(load_repository(repository), options.ensemble)
    steps = list(chosen.steps)
    if options.url:  # a server that is not there is the first thing to say
        check_server(options.url, [chosen.ensemble, *steps])
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
    server = None
    workdir = None
    served_repository: Path | None = None
    try:
        if options.url:
            url = options.url
            how = "given with --url"
        else:
            workdir = tempfile.TemporaryDirectory(prefix="triton-vision-bench-")
            served_repository = bench_repository(repository, chosen, Path(workdir.name) / "repository")
            server_options = ServerOptions(
                model_repository=served_repository,
                http_port=free_port(),
                grpc_port=free_port(),
                metrics_port=free_port(),
            )
            progress(f"starting tritonserver on {server_options.grpc_url} ({', '.join(steps)}) ...")
            server = LocalTritonServer(server_options).start()
            server.wait_ready(timeout=SERVER_START_TIMEOUT_S)
            url = server_options.grpc_url
            how = "started by the bench: the local runtime, this repository's configs"
        served = served_configs(url, [chosen.ensemble, *steps])
        server_pid = server.process.pid if server and server.process else None
        sweep = Sweep(url, options, images, chosen, server_pid, served_repository)
        paths: dict[str, dict] = {}
        paths[ENSEMBLE] = asyncio.run(
            sweep.run(
                ENSEMBLE,
                options.concurrency or chosen.settings.concurrency,
                f"the `{chosen.ensemble}` ensemble",
                steps,
            )
        )
        if options.perf_analyzer:
            paths["ensemble_perf_analyzer"] = perf_analyzer_path(
                url, chosen, median_jpeg(images), options.perf_analyzer_concurrency, options
            )
        paths[SEED] = asyncio.run(
            sweep.run(
                SEED,
                options.seed_concurrency or chosen.settings.seed_concurrency,
                "the seed's path: client OpenCV preprocessing, FP32 to the bare model",
                [chosen.model],
            )
        )
        paths[SEED]["label"] = "the seed's path: client preprocessing, FP32 to the bare model"
    finally:
        if server is not None:
            progress("stopping tritonserver ...")
            server.stop()
        if workdir is not None:
            workdir.cleanup()
    ceiling, bound = in_process(chosen, images, budget_s=max(4.0, options.duration_s * 2))
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
        "server": {"url": url, "how": how},
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
    report["served_line"] = instances_line(served)
    report["summary"] = br.summarise(report)
    report["targets"] = br.targets(chosen.task, report["summary"])
    return report
