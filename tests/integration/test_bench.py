"""``triton-vision bench`` end to end: a tiny run against the classification stand-in writes its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

BENCH_TIMEOUT_S = 480


def triton_vision() -> str:
    return str(Path(sys.executable).parent / "triton-vision")


def test_bench_starts_its_server_and_writes_markdown_json_and_png(classification_repository, tmp_path):
    out = tmp_path / "bench"
    command = [
        triton_vision(),
        "bench",
        "--model-repository",
        str(classification_repository),
        "--duration",
        "0.5",
        "--warmup",
        "0.3",
        "--concurrency",
        "1,2",
        "--seed-concurrency",
        "1",
        "--perf-analyzer-concurrency",
        "1",
        "--max-images",
        "4",
        "--out",
        str(out),
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "bench: the `classification` ensemble: concurrency 1" in run.stderr  # progress on stderr
    assert "Traceback" not in run.stderr

    report = json.loads((out / "bench-classification.json").read_text())
    assert report["schema"] == "triton-vision-bench/1"
    assert report["machine"]["cores"] >= 1 and report["machine"]["loadavg_before"]
    assert [p["concurrency"] for p in report["paths"]["ensemble"]["points"]] == [1, 2]
    assert [p["concurrency"] for p in report["paths"]["seed"]["points"]] == [1]
    for point in report["paths"]["ensemble"]["points"] + report["paths"]["seed"]["points"]:
        assert point["images_per_s"] > 0 and point["p50_ms"] <= point["p99_ms"]
        assert point["errors"] == 0
    pa = report["paths"]["ensemble_perf_analyzer"]
    # perf_analyzer ran; on a busy machine it may refuse to call its windows stable, and says so.
    assert pa["points"] or "stable measurement" in pa["error"], pa["error"]
    assert all(p["images_per_s"] > 0 for p in pa["points"])

    # Bytes on the wire: the ensemble gets each encoded file plus a small protobuf envelope,
    # the seed's path 3 x 224 x 224 float32 = 602,112 bytes plus its envelope.
    mean_file = sum(i["bytes"] for i in report["images"]) / len(report["images"])
    ensemble_bytes = report["paths"]["ensemble"]["points"][0]["request_bytes_per_image"]
    assert mean_file < ensemble_bytes < mean_file + 1024
    assert 602_112 < report["paths"]["seed"]["points"][0]["request_bytes_per_image"] < 602_112 + 1024

    steps = report["paths"]["ensemble"]["points"][0]["server_steps"]
    assert [s["model"] for s in steps] == [
        "image_guard",
        "classification_preprocess",
        "resnet18",
        "classification_postprocess",
    ]
    for step in steps:
        assert step["requests"] >= 1 and step["compute_ms"] > 0 and step["queue_ms"] >= 0
    assert report["served_configs"]["resnet18"]["instance_group"]
    assert report["in_process"]["single_image_ms"] > 0 and report["work_bound"]["images_per_s"] > 0
    assert {row["target"] for row in report["targets"]} >= {"wire bytes per image / encoded file"}

    markdown = (out / "bench-classification.md").read_text()
    for heading in ("## Summary", "## Targets", "## Where the time goes"):
        assert heading in markdown
    assert (out / "bench-classification.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_against_an_address_without_a_server_says_so_without_a_traceback(tmp_path):
    from triton_vision_server.runtime import free_port

    run = subprocess.run(
        [triton_vision(), "bench", "--url", f"127.0.0.1:{free_port()}", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert "no Triton server answers" in run.stderr and "Traceback" not in run.stderr
