"""Benchmark: a classification folder job against perf_analyzer's throughput on the same server.

``python -m benchmarks.folder_job [--url HOST:PORT] [--images 480] [--rounds 5]``

Serves the classification ensemble (the ResNet-18 file of ``model_repository`` if prepared, else
a stand-in), fills a folder with copies of one real JPEG (``../shared/images/kitten.jpg``, or
scikit-image's chelsea). A sweep finds perf_analyzer's best configuration (the same JPEG as input
data; batch sizes 1, 8, 32); then paired rounds run that configuration and
``triton-vision classify FOLDER --format jsonl -o FILE`` (as a user would: a subprocess; its
summary gives images/s) back to back, in alternating order, so that each ratio compares two
figures taken under the same load (a shared machine's load moves from minute to minute). Prints
every figure, the ratio per round and its median, and best against best; writes them to
``out/bench-folder-job.json``. perf_analyzer counts images ("infer/sec" is requests x batch).
Bounded: each perf_analyzer run at most 240 s, each job at most 600 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PERF_CONFIGS = ((1, 4), (8, 2), (32, 2))  # (batch, concurrency)
PERF_TIMEOUT_S = 240
JOB_TIMEOUT_S = 600
SUMMARY = re.compile(r"classified (\d+) of (\d+) images? in \S+ \(([\d.]+) s, ([\d.]+) images/s\)")


def jpeg_bytes() -> bytes:
    from tests.conftest import SHARED

    kitten = SHARED / "images" / "kitten.jpg"
    if kitten.exists():
        return kitten.read_bytes()
    import cv2
    from skimage import data

    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR))
    return encoded.tobytes()


@contextlib.contextmanager
def classification_server(workdir: Path) -> Iterator[str]:
    from tests.conftest import MODEL_REPOSITORY, ensemble_repository
    from tests.integration.conftest import running_server
    from triton_vision_authoring import models as model_files
    from triton_vision_models import tensors as t

    repository = ensemble_repository(workdir / "repository", t.CLASSIFICATION)
    prepared = MODEL_REPOSITORY / t.CLASSIFIER / "1"
    if (prepared / "model.onnx").exists():
        for name in ("model.onnx", "model.source.json"):
            if (prepared / name).exists():
                shutil.copy(prepared / name, repository / t.CLASSIFIER / "1" / name)
    else:
        model_files.prepare(repository, model_files.CATALOGUE[t.CLASSIFIER], stand_in=True)
    with running_server(repository) as server:
        yield server.options.grpc_url


def perf_throughput(url: str, image: Path, workdir: Path, batch: int, concurrency: int) -> float | None:
    """perf_analyzer's images/s at one batch size and concurrency (None if it found no stable figure)."""
    from triton_vision_bench.perf import perf_analyzer_command, perf_analyzer_env

    # A shared machine: accept windows within 50% of each other, at most 5 windows.
    command = perf_analyzer_command(
        image,
        workdir / "perf-data",
        url=url,
        concurrency=str(concurrency),
        measurement_ms=6000,
        stability_percentage=50,
        max_trials=5,
    )
    command += ["-b", str(batch)]
    try:
        done = subprocess.run(command, env=perf_analyzer_env(), capture_output=True, text=True, timeout=PERF_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None
    found = re.findall(r"throughput: ([\d.]+) infer/sec", done.stdout)
    return float(found[-1]) if done.returncode == 0 and found else None


def folder_job(url: str, folder: Path, workdir: Path, concurrency: int) -> tuple[float, int, float]:
    """``triton-vision classify FOLDER`` as a subprocess: (images/s, images answered, seconds)."""
    output = workdir / "records.jsonl"
    command = [sys.executable, "-m", "triton_vision_cli", "classify", str(folder), "--url", url]
    command += ["--format", "jsonl", "--output", str(output), "--concurrency", str(concurrency)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    match = SUMMARY.search(done.stderr)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"the folder job failed ({done.returncode}): {done.stderr[-2000:]}")
    answered, seconds, rate = int(match.group(1)), float(match.group(3)), float(match.group(4))
    records = sum(1 for line in output.read_text().splitlines() if '"classes"' in line)
    if records != answered:
        raise RuntimeError(f"{records} records for {answered} answered images")
    return rate, answered, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="a running server (default: start one)")
    parser.add_argument("--images", type=int, default=480)
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds after the sweep")
    parser.add_argument("--job-concurrency", type=int, default=4)
    parser.add_argument(
        "--perf-config", type=int, nargs=2, metavar=("BATCH", "CONCURRENCY"), help="skip the sweep: use this one"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-folder-job-") as tmp:
        workdir = Path(tmp)
        image = workdir / "image.jpg"
        image.write_bytes(jpeg_bytes())
        folder = workdir / "folder"
        folder.mkdir()
        for index in range(args.images):
            shutil.copyfile(image, folder / f"{index:06d}.jpg")
        server = contextlib.nullcontext(args.url) if args.url else classification_server(workdir)
        figures: dict[str, Any] = {"sweep": [], "rounds": []}
        with server as url:
            print(f"server {url}; folder of {args.images} copies of a {image.stat().st_size}-byte JPEG", flush=True)

            def perf(batch: int, concurrency: int) -> float | None:
                rate = perf_throughput(url, image, workdir, batch, concurrency)
                shown = "unstable" if rate is None else f"{rate:.2f} images/s"
                print(f"  perf_analyzer batch {batch:2d} concurrency {concurrency}: {shown}", flush=True)
                return rate

            def job() -> float:
                rate, answered, seconds = folder_job(url, folder, workdir, args.job_concurrency)
                print(f"  folder job concurrency {args.job_concurrency}: {rate:.2f} images/s ({seconds:.1f} s)")
                return rate

            print("sweep: perf_analyzer's best configuration", flush=True)
            for batch, concurrency in [tuple(args.perf_config)] if args.perf_config else PERF_CONFIGS:
                figures["sweep"].append(
                    {"batch": batch, "concurrency": concurrency, "images_per_s": perf(batch, concurrency)}
                )
            measured = [f for f in figures["sweep"] if f["images_per_s"] is not None]
            if not measured:
                print("perf_analyzer found no stable figure: no ratio")
                return 1
            best = max(measured, key=lambda f: f["images_per_s"])
            # Paired rounds: the best configuration and the folder job back to back, in alternating order.
            for number in range(1, args.rounds + 1):
                print(f"round {number}", flush=True)
                if number % 2:
                    perf_rate, job_rate = perf(best["batch"], best["concurrency"]), job()
                else:
                    job_rate = job()
                    perf_rate = perf(best["batch"], best["concurrency"])
                figures["rounds"].append({"perf_images_per_s": perf_rate, "job_images_per_s": job_rate})
    ratios = [r["job_images_per_s"] / r["perf_images_per_s"] for r in figures["rounds"] if r["perf_images_per_s"]]
    perf_rates = [r["perf_images_per_s"] for r in figures["rounds"] if r["perf_images_per_s"]] + [
        f["images_per_s"] for f in measured
    ]
    job_rates = [r["job_images_per_s"] for r in figures["rounds"]]
    figures["best_perf_configuration"] = {"batch": best["batch"], "concurrency": best["concurrency"]}
    figures["ratio_per_round"] = ratios
    figures["ratio_median"] = statistics.median(ratios) if ratios else None
    figures["ratio_best_job_to_best_perf"] = max(job_rates) / max(perf_rates) if job_rates else None
    print(
        f"perf_analyzer best configuration: batch {best['batch']}, concurrency {best['concurrency']}; "
        f"job/perf round by round: {', '.join(f'{r:.2f}' for r in ratios)}"
        + (f" (median {statistics.median(ratios):.3f})" if ratios else "")
        + f"; best job {max(job_rates):.2f} vs best perf {max(perf_rates):.2f} images/s: "
        f"{figures['ratio_best_job_to_best_perf']:.3f}"
    )
    report = ROOT / "out" / "bench-folder-job.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps(figures, indent=2))
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
