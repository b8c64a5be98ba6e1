"""Drive an ensemble with ``perf_analyzer`` (shipped in the tritonclient 2.51 wheel) and a real image.

perf_analyzer needs Debian's ``libb64-0d`` and ``libcudart.so.12`` (PyPI
``nvidia-cuda-runtime-cu12``); this module finds the latter in the environment and writes the
image as perf_analyzer's input data (a folder with one raw file named after the input).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from triton_vision_models import tensors as t

from .runtime import RuntimeMissingError


def perf_analyzer_binary() -> Path:
    candidate = Path(sys.executable).parent / "perf_analyzer"
    found = candidate if candidate.is_file() else shutil.which("perf_analyzer")
    if not found:
        raise RuntimeMissingError("perf_analyzer is missing: pip install 'tritonclient[all]==2.51.0'")
    return Path(found)


def perf_analyzer_env() -> dict[str, str]:
    site = Path(sysconfig.get_paths()["platlib"])
    libs = sorted({str(p.parent) for p in site.glob("nvidia/*/lib/libcudart.so.12")})
    if not libs:
        raise RuntimeMissingError("libcudart.so.12 is missing: pip install nvidia-cuda-runtime-cu12")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    return env


def perf_analyzer_command(
    image: Path,
    data_dir: Path,
    *,
    model: str = t.CLASSIFICATION,
    url: str = "127.0.0.1:8001",
    protocol: str = "grpc",
    concurrency: str = "1:4",
    measurement_ms: int = 5000,
) -> list[str]:
    """The command line; ``image``'s bytes are copied to ``data_dir/IMAGE`` as the input data."""
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image, data_dir / t.IMAGE)
    return [
        str(perf_analyzer_binary()),
        "-m",
        model,
        "-u",
        url,
        "-i",
        protocol,
        "--input-data",
        str(data_dir),
        "--shape",
        f"{t.IMAGE}:{image.stat().st_size}",
        "--concurrency-range",
        concurrency,
        "--measurement-interval",
        str(measurement_ms),
    ]


def perf_analyzer_csv(path: Path) -> list[dict[str, float]]:
    """The rows of perf_analyzer's ``-f`` CSV report, one per concurrency, every value a float.

    Columns include ``Concurrency``, ``Inferences/Second`` and ``p50 latency`` ... ``p99 latency``
    (microseconds); a value that is not a number becomes NaN.
    """
    import csv

    rows = []
    with path.open(newline="") as handle:
        for raw in csv.DictReader(handle):
            row = {}
            for key, value in raw.items():
                if key is None:
                    continue
                try:
                    row[key.strip()] = float(value)
                except (TypeError, ValueError):
                    row[key.strip()] = float("nan")
            rows.append(row)
    return rows
