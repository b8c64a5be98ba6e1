"""``triton-vision bench`` end to end: a tiny run against the classification stand-in writes its report."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.modelconfigs import load_config, step_models

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
        "--baseline-concurrency",
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
    assert [p["concurrency"] for p in report["paths"]["baseline"]["points"]] == [1]
    for point in report["paths"]["ensemble"]["points"] + report["paths"]["baseline"]["points"]:
        assert point["images_per_s"] > 0 and point["p50_ms"] <= point["p99_ms"]
        assert point["errors"] == 0
    pa = report["paths"]["ensemble_perf_analyzer"]
    # perf_analyzer ran; on a busy machine it may refuse to call its windows stable, and says so.
    assert pa["points"] or "stable measurement" in pa["error"], pa["error"]
    assert all(p["images_per_s"] > 0 for p in pa["points"])

    # Bytes on the wire: the ensemble gets each encoded file plus a small protobuf envelope,
    # the baseline's 3 x 224 x 224 float32 = 602,112 bytes plus its envelope.
    mean_file = sum(i["bytes"] for i in report["images"]) / len(report["images"])
    ensemble_bytes = report["paths"]["ensemble"]["points"][0]["request_bytes_per_image"]
    assert mean_file < ensemble_bytes < mean_file + 1024
    assert 602_112 < report["paths"]["baseline"]["points"][0]["request_bytes_per_image"] < 602_112 + 1024

    # the bench's server runs the ensemble fused, as serve does: its statistics are the ensemble's own
    assert "each ensemble fused" in report["server"]["how"]
    steps = report["paths"]["ensemble"]["points"][0]["server_steps"]
    assert [s["model"] for s in steps] == ["classification"]
    for step in steps:
        assert step["requests"] >= 1 and step["compute_ms"] > 0 and step["queue_ms"] >= 0
    assert report["served_configs"]["resnet18"]["instance_group"]
    assert report["in_process"]["single_image_ms"] > 0 and report["work_bound"]["images_per_s"] > 0
    assert {row["target"] for row in report["targets"]} >= {"wire bytes per image / encoded file"}

    # CPU per image per process: tritonserver, the fused ensemble's processes (one per instance: the
    # busiest step's count), then the steps' own (idle), adding up to the server's CPU per image; the
    # fused process spends the most, at least half of what the same model costs in-process on one
    # thread (a ratio of figures of this one run).
    steps_in_config = step_models(classification_repository, "classification", nested=False)  # no process
    instances = {
        m: sum(g.count for g in load_config(classification_repository / m).instance_group) for m in steps_in_config
    }
    for point in report["paths"]["ensemble"]["points"]:
        rows = {row["process"]: row for row in point["server_processes"]}
        assert list(rows)[:2] == ["tritonserver", "classification"]
        assert set(rows) - {"tritonserver", "classification"} <= set(steps_in_config) | {"model_info"}
        assert rows["classification"]["processes"] == max(instances.values())
        assert all(row["rss_mb"] > 0 for row in rows.values())
        assert sum(r["cpu_ms_per_image"] for r in rows.values()) == pytest.approx(point["server_cpu_ms_per_image"])
        assert max(rows.values(), key=lambda r: r["cpu_ms_per_image"])["process"] == "classification"
        assert rows["classification"]["cpu_ms_per_image"] >= 0.5 * report["work_bound"]["model_cpu_ms"]
    tables = report["summary"]["cpu_per_process"]["ensemble"]
    assert [entry["concurrency"] for entry in tables] == sorted({1, report["summary"]["ensemble_best_concurrency"]})
    assert tables[0]["rows"][-1]["process"] == "client (the bench process)"

    # The repeated-image workload, on a second server with a response cache: the repeats were hits of
    # the ensemble's cached image part.
    (lowest, *_) = report["summary"]["repeats"]
    assert lowest["concurrency"] == 1 and lowest["cached_models"] == ["classification_infer"]
    assert lowest["repeats"] >= 1 and lowest["cache_hits"] == lowest["repeats"] and lowest["repeat_p50_ms"] > 0

    # The peer (the HTTP server a user would write instead), at the ensemble's concurrencies, in the
    # same run: its figures and the ratios are there and finite (never a timed bound).
    peer = report["paths"]["peer"]
    assert [p["concurrency"] for p in peer["points"]] == [1, 2], peer["error"]
    mean_bytes = report["images_mean_bytes"]
    for point in peer["points"]:
        assert point["errors"] == 0 and point["images_per_s"] > 0 and point["p50_ms"] <= point["p99_ms"]
        assert point["server_cpu_ms_per_image"] > 0 and point["response_bytes_per_image"] > 0
        assert mean_bytes < point["request_bytes_per_image"] < mean_bytes + 1024
        workers = {row["process"]: row["processes"] for row in point["server_processes"]}
        assert workers["peer: worker"] == 2
    versus = report["summary"]["peer"]
    for key in ("images_per_s_ratio", "server_cpu_ratio", "p50_at_lowest_ratio", "total_cpu_ratio"):
        assert math.isfinite(versus[key]) and versus[key] > 0, key
    assert {"ensemble / peer, best images/s"} <= {row["target"] for row in report["targets"]}
    assert "ensemble / peer =" in run.stdout

    markdown = (out / "bench-classification.md").read_text()
    assert "## Against the server a user would write instead (the peer)" in markdown
    headings = ("## Summary", "## Against the project's goals", "## Where the time goes", "## Where the cycles go")
    for heading in (*headings, "## Repeated"):
        assert heading in markdown
    assert (out / "bench-classification.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_measures_an_ensemble_renamed_by_export_repo(classification_repository, tmp_path):
    """Profiles come from the repository: a prefixed copy is measured under its own names."""
    from triton_vision_authoring.export_repo import export_repository

    repository = tmp_path / "exported"
    export_repository(classification_repository, repository, prefix="tv_", models=["classification"])
    out = tmp_path / "bench"
    command = [triton_vision(), "bench", "--ensemble", "tv_classification", "--model-repository", str(repository)]
    command += ["--duration", "0.3", "--warmup", "0.2", "--concurrency", "1", "--baseline-concurrency", "1"]
    command += ["--no-perf-analyzer", "--no-repeats", "--no-peer", "--max-images", "2", "--out", str(out)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((out / "bench-tv_classification.json").read_text())
    assert (report["task"], report["model"]) == ("classification", "tv_resnet18")
    (point,) = report["paths"]["ensemble"]["points"]
    assert [s["model"] for s in point["server_steps"]] == ["tv_classification"]  # fused: its own statistics
    assert all(s["requests"] >= 1 for s in point["server_steps"])
    (baseline,) = report["paths"]["baseline"]["points"]
    assert baseline["errors"] == 0 and 602_112 < baseline["request_bytes_per_image"] < 602_112 + 1024


def test_bench_against_an_address_without_a_server_says_so_without_a_traceback(tmp_path):
    from triton_vision_serving.runtime import free_port

    run = subprocess.run(
        [triton_vision(), "bench", "--url", f"127.0.0.1:{free_port()}", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("error: no Triton server answers") and "Traceback" not in run.stderr
