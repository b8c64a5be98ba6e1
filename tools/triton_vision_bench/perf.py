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

Measurement: perf_analyzer repeats windows of ``measurement_ms`` until the last three agree,
throughput and latency each within ``stability_percentage`` (max / min). Its own default, 10 %,
is rarely met on a CPU shared with other work: with one bursty process beside it on 2 cores, runs
at concurrency 1 ended ``Failed to obtain stable measurement within 10 measurement windows``
(exit 2, after 60 s); with 50 % and up to 20 windows they settled after a few windows
(:data:`STABILITY_PERCENTAGE`, :data:`MAX_TRIALS`; measured: see docs/benchmarking.md). ``request_count`` instead
bounds a run to that many requests, one concurrency level per run.

``triton-vision perf`` (:mod:`.perf_command`) builds the command from these and runs it.
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
from triton_vision_authoring.errors import RuntimeMissingError
from triton_vision_contract.errors import UsageError
from triton_vision_models import tensors as t

DEFAULT_URLS = {
    "grpc": f"{contract.DEFAULT_HOST}:{contract.DEFAULT_GRPC_PORT}",
    "http": f"{contract.DEFAULT_HOST}:{contract.DEFAULT_HTTP_PORT}",
}
MEASUREMENT_MS = 5000  # perf_analyzer's own default window
STABILITY_PERCENTAGE = 50  # perf_analyzer's default is 10: see the module docstring
MAX_TRIALS = 20  # windows per concurrency level before perf_analyzer gives up (its default: 10)
CONCURRENCY = "1:4"  # the default sweep; one level (1) with --request-count


class PerfUsageError(UsageError):
    """A perf_analyzer run that cannot be asked for: the command exits 2 with one line."""


class PerfInputError(PerfUsageError):
    """Images or a batch size that perf_analyzer's input data cannot be made from."""


def concurrency_range(text: str) -> tuple[int, int, int]:
    """perf_analyzer's ``--concurrency-range start[:end[:step]]`` as (start, end, step)."""
    try:
        parts = [int(part) for part in text.split(":")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or any(part < 1 for part in parts):
        raise PerfUsageError(f"--concurrency takes start[:end[:step]], whole numbers >= 1, got '{text}'")
    start = parts[0]
    end = parts[1] if len(parts) > 1 else start  # perf_analyzer: no end, one level
    step = parts[2] if len(parts) > 2 else 1
    if end < start:
        raise PerfUsageError(f"--concurrency {text}: the end ({end}) is below the start ({start})")
    return start, end, step


def resolve_concurrency(text: str | None, request_count: int | None) -> str:
    """The ``--concurrency-range`` to run: ``text``, or the default (``1`` with a request count).

    perf_analyzer refuses ``--request-count`` with a range whose end is not its start (and
    prints its whole usage text): that is refused here with one line.
    """
    if request_count is not None and request_count < 1:
        raise PerfUsageError(f"--request-count must be at least 1, got {request_count}")
    if text is None:
        return "1" if request_count is not None else CONCURRENCY
    start, end, _ = concurrency_range(text)
    if request_count is not None and end != start:
        raise PerfUsageError(
            f"--request-count runs one concurrency level, got --concurrency {text}:"
            " give one (e.g. --concurrency 2), or drop --request-count to measure windows"
        )
    return text


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
    url: str = DEFAULT_URLS["grpc"],
    protocol: str = "grpc",
    concurrency: str | None = None,
    measurement_ms: int = MEASUREMENT_MS,
    stability_percentage: int = STABILITY_PERCENTAGE,
    max_trials: int = MAX_TRIALS,
    request_count: int | None = None,
) -> list[str]:
    """The command line; ``image``'s bytes are copied to ``data_dir/IMAGE`` as the input data.

    ``request_count`` bounds the run to that many requests (one concurrency level) instead of
    measuring ``measurement_ms`` windows until they are stable.
    """
    concurrency = resolve_concurrency(concurrency, request_count)
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image, data_dir / t.IMAGE)
    shape = ["--shape", f"{t.IMAGE}:{image.stat().st_size}"]
    load = _load(concurrency, measurement_ms, stability_percentage, max_trials, request_count)
    return _command(model, url, protocol, data_dir, shape + load)


def _command(model: str, url: str, protocol: str, input_data: Path, extra: list[str]) -> list[str]:
    """perf_analyzer's command line: the model, the server, the input data, then ``extra``."""
    command = [str(perf_analyzer_binary()), "-m", model, "-u", url, "-i", protocol, "--input-data", str(input_data)]
    return command + extra


def _load(
    concurrency: str, measurement_ms: int, stability_percentage: int, max_trials: int, request_count: int | None
) -> list[str]:
    """The load and the run length: a request count, or windows until they are stable."""
    load = ["--concurrency-range", concurrency]
    if request_count is not None:
        return load + ["--request-count", str(request_count)]
    if measurement_ms < 1 or stability_percentage < 1 or max_trials < 3:
        raise PerfUsageError(
            "--measurement-ms and --stability-percentage must be positive and --max-trials at least 3"
            " (perf_analyzer compares the last three windows)"
        )
    return load + [
        "--measurement-interval",
        str(measurement_ms),
        "--stability-percentage",
        str(stability_percentage),
        "--max-trials",
        str(max_trials),
    ]


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
    model_prefix: str = "",
    url: str = DEFAULT_URLS["grpc"],
    protocol: str = "grpc",
    batch_size: int = 1,
    concurrency: str | None = None,
    measurement_ms: int = MEASUREMENT_MS,
    stability_percentage: int = STABILITY_PERCENTAGE,
    max_trials: int = MAX_TRIALS,
    request_count: int | None = None,
) -> list[str]:
    """The command line driving ``model_prefix + model`` with the image files, written to
    ``data_file`` as JSON (``model_prefix``: a repository from ``export-repo --prefix``).

    ``request_count`` bounds the run to that many requests (perf_analyzer's ``--request-count``,
    no stability windows, one concurrency level: the choice for tests and for slow models);
    otherwise perf_analyzer measures windows of ``measurement_ms`` until they are stable.
    """
    limit = t.MAX_BATCH.get(model)
    if limit is not None and batch_size > limit:
        raise PerfInputError(f"'{model}' takes at most {limit} images per request, got batch size {batch_size}")
    if batch_size < 1:
        raise PerfInputError(f"batch size must be at least 1, got {batch_size}")
    concurrency = resolve_concurrency(concurrency, request_count)
    load = _load(concurrency, measurement_ms, stability_percentage, max_trials, request_count)
    write_input_data(images, data_file, batch_size=batch_size)
    return _command(model_prefix + model, url, protocol, data_file, ["-b", str(batch_size), *load])


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
