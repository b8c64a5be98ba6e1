"""Drive an ensemble with ``perf_analyzer`` (shipped in the tritonclient 2.51 wheel) and real images.

perf_analyzer needs Debian's ``libb64-0d`` and ``libcudart.so.12`` (PyPI
``nvidia-cuda-runtime-cu12``); this module finds the latter in the environment and writes real
encoded images as perf_analyzer's input data:

- :func:`perf_analyzer_command`: one image as a folder with one raw file named after the input
  (``--shape IMAGE:<bytes>``), every request the same image;
- :func:`write_input_data` / :func:`perf_analyzer_data_command`: several JPEG/PNG files as a JSON
  file, one entry per file (``{"IMAGE": {"b64": ..., "shape": [bytes]}}``), so that requests
  cycle through them. perf_analyzer builds a request of batch size ``-b N`` from N consecutive
  entries and refuses entries of different shapes in one request ("can not batch tensors with
  different shapes together"), so for N > 1 every entry is zero-padded to the longest file: the
  ensembles' own batch layout (zero-padded rows; the decoders stop at the image's end marker).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import triton_vision_contract as contract
from triton_vision_models import tensors as t

from .errors import RuntimeMissingError, UsageError


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
    url: str = f"{contract.DEFAULT_HOST}:{contract.DEFAULT_GRPC_PORT}",
    protocol: str = "grpc",
    concurrency: str = "1:4",
    measurement_ms: int = 5000,
    request_count: int | None = None,
) -> list[str]:
    """The command line; ``image``'s bytes are copied to ``data_dir/IMAGE`` as the input data.

    ``request_count`` bounds the run to that many requests per concurrency level instead of
    measuring ``measurement_ms`` windows until they are stable.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image, data_dir / t.IMAGE)
    shape = ["--shape", f"{t.IMAGE}:{image.stat().st_size}"]
    return _command(model, url, protocol, data_dir, shape, concurrency, measurement_ms, request_count)


def _command(
    model: str,
    url: str,
    protocol: str,
    input_data: Path,
    extra: list[str],
    concurrency: str,
    measurement_ms: int,
    request_count: int | None,
) -> list[str]:
    """perf_analyzer's command line: the model, the server, the input data, ``extra``, the load."""
    command = [str(perf_analyzer_binary()), "-m", model, "-u", url, "-i", protocol, "--input-data", str(input_data)]
    return command + extra + ["--concurrency-range", concurrency] + _run_length(measurement_ms, request_count)


def _run_length(measurement_ms: int, request_count: int | None) -> list[str]:
    if request_count is not None:
        return ["--request-count", str(request_count)]
    return ["--measurement-interval", str(measurement_ms)]


class PerfInputError(UsageError):
    """Images or a batch size that perf_analyzer's input data cannot be made from (a usage error)."""


JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_encoded_images(images: Sequence[Path]) -> list[bytes]:
    """The files' bytes; each must be a JPEG or PNG (the only formats the ensembles accept)."""
    if not images:
        raise PerfInputError("perf_analyzer input data needs at least one JPEG or PNG file")
    encoded = []
    for path in images:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise PerfInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if not (data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)):
            raise PerfInputError(f"{path} is not a JPEG or PNG file (starts with {data[:8]!r})")
        encoded.append(data)
    return encoded


def input_data_json(encoded: Sequence[bytes], *, batch_size: int = 1) -> dict:
    """perf_analyzer's JSON input data: one ``IMAGE`` entry (base64 + its own shape) per image.

    ``batch_size`` 1: each entry as long as its file. Above 1: every entry zero-padded to the
    longest, because perf_analyzer puts ``batch_size`` consecutive entries in one request and
    refuses entries of different shapes there.
    """
    if batch_size < 1:
        raise PerfInputError(f"batch size must be at least 1, got {batch_size}")
    width = max(map(len, encoded)) if batch_size > 1 else None
    entries = []
    for data in encoded:
        row = data if width is None else data + bytes(width - len(data))
        entries.append({t.IMAGE: {"b64": base64.b64encode(row).decode("ascii"), "shape": [len(row)]}})
    return {"data": entries}


def write_input_data(images: Sequence[Path], target: Path, *, batch_size: int = 1) -> Path:
    """Write :func:`input_data_json` of the image files to ``target`` (a .json file); returns it."""
    document = input_data_json(read_encoded_images(images), batch_size=batch_size)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document))
    return target


def perf_analyzer_data_command(
    images: Sequence[Path],
    data_file: Path,
    *,
    model: str = t.CLASSIFICATION,
    url: str = f"{contract.DEFAULT_HOST}:{contract.DEFAULT_GRPC_PORT}",
    protocol: str = "grpc",
    batch_size: int = 1,
    concurrency: str = "1",
    measurement_ms: int = 5000,
    request_count: int | None = None,
) -> list[str]:
    """The command line driving ``model`` with the image files, written to ``data_file`` as JSON.

    ``request_count`` bounds the run to that many requests (perf_analyzer's ``--request-count``,
    no stability windows: the choice for tests and for slow models); otherwise perf_analyzer
    measures windows of ``measurement_ms`` until they are stable.
    """
    limit = t.MAX_BATCH.get(model)
    if limit is not None and batch_size > limit:
        raise PerfInputError(f"'{model}' takes at most {limit} images per request, got batch size {batch_size}")
    write_input_data(images, data_file, batch_size=batch_size)
    return _command(
        model, url, protocol, data_file, ["-b", str(batch_size)], concurrency, measurement_ms, request_count
    )


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
