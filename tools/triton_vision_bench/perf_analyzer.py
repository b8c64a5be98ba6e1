"""The ensemble measured by ``perf_analyzer`` (from the tritonclient wheel, via :mod:`..perf`),
one image as input data, one run per concurrency, figures from its CSV."""

from __future__ import annotations

import math
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from triton_vision_bench.images import BenchImage
from triton_vision_bench.messages import progress
from triton_vision_bench.options import BenchOptions
from triton_vision_bench.perf import perf_analyzer_command, perf_analyzer_csv, perf_analyzer_env
from triton_vision_bench.profiles import Profile
from triton_vision_contract.errors import TritonVisionError

LABEL = "ensemble (perf_analyzer)"
# The bench's point is one figure per concurrency, however the load moves: any three windows
# within 100 % of each other, at most six of them.
STABILITY_PERCENTAGE = 100
MAX_TRIALS = 6


def perf_analyzer_path(
    url: str, profile: Profile, image: BenchImage, concurrencies: Sequence[int], options: BenchOptions
) -> dict:
    points: list[dict] = []
    error = ""
    with tempfile.TemporaryDirectory(prefix="bench-pa-") as work:
        work_dir = Path(work)
        image_path = work_dir / image.name
        image_path.write_bytes(image.data)
        try:
            env = perf_analyzer_env()
        except TritonVisionError as exc:
            return {"label": LABEL, "source": "perf_analyzer", "points": [], "error": str(exc)}
        for concurrency in concurrencies:
            csv_path = work_dir / f"c{concurrency}.csv"
            command = perf_analyzer_command(
                image_path,
                work_dir / "data",
                model=profile.ensemble,
                url=url,
                concurrency=str(concurrency),
                measurement_ms=int(options.duration_s * 1000),
                stability_percentage=STABILITY_PERCENTAGE,
                max_trials=MAX_TRIALS,
            ) + ["-f", str(csv_path)]
            progress(f"{LABEL}: concurrency {concurrency} ...")
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
                progress(f"{LABEL}: {error}")
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
            progress(f"{LABEL}: concurrency {concurrency}: {row['Inferences/Second']:.2f} images/s")
    return {
        "label": LABEL,
        "source": f"perf_analyzer (tritonclient 2.51 wheel) on one image ({image.name}, {image.format},"
        " its bytes as IMAGE), latencies from its CSV",
        "points": points,
        "error": error,
    }
