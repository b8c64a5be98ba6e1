"""``triton-vision bench`` pieces that need no server: options, images, client-side tensors, the load generator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY
from tests.reference import classification_input
from triton_vision_server import bench
from triton_vision_server.perf import perf_analyzer_csv


def test_concurrency_list_is_parsed_sorted_and_bounded():
    assert bench.parse_concurrency("4,1,2,2") == (1, 2, 4)
    for bad in ("", "0", "1,x", "300"):
        with pytest.raises(bench.BenchError, match="concurrency"):
            bench.parse_concurrency(bad)


def test_perf_analyzer_csv_rows_become_numbers(tmp_path):
    path = tmp_path / "pa.csv"
    path.write_text(
        "Concurrency,Inferences/Second,Client Send,p50 latency,p90 latency,p95 latency,p99 latency,Avg latency\n"
        "4,41.5,120,95000,120000,130000,150000,97000\n"
    )
    (row,) = perf_analyzer_csv(path)
    assert row["Concurrency"] == 4 and row["Inferences/Second"] == 41.5 and row["p99 latency"] == 150000


def test_bench_repository_holds_the_ensemble_and_its_steps_with_linked_onnx_files(tmp_path):
    source = tmp_path / "source"
    from tests.conftest import ensemble_repository

    ensemble_repository(source, "classification")
    (source / "resnet18" / "1" / "model.onnx").write_bytes(b"onnx")
    target = bench.bench_repository(source, "classification", tmp_path / "bench")
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted(["classification", *bench.ensemble_steps(MODEL_REPOSITORY, "classification")])
    link = target / "resnet18" / "1" / "model.onnx"
    assert link.is_symlink() and link.read_bytes() == b"onnx"


def test_ensemble_steps_follow_the_config():
    assert bench.ensemble_steps(MODEL_REPOSITORY, "classification") == [
        "image_guard",
        "classification_preprocess",
        "resnet18",
        "classification_postprocess",
    ]


def test_without_shared_images_the_bench_uses_scikit_image_photos_as_jpeg_and_png(monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "SHARED_IMAGES", tmp_path / "absent")
    images = bench.bench_images(limit=6)
    assert len(images) == 6
    assert {i.format for i in images} == {"JPEG", "PNG"}
    assert len({(i.width, i.height) for i in images}) >= 3
    assert all(max(i.width, i.height) <= 640 for i in images if i.format == "PNG")


def test_image_count_is_bounded(monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "SHARED_IMAGES", tmp_path / "absent")
    assert len(bench.bench_images(limit=1000)) <= bench.MAX_IMAGES


def test_client_side_classification_tensor_is_close_to_the_pillow_reference(chelsea_rgb):
    data = bench._encode(chelsea_rgb, ".png")
    ours = bench.classification_tensors(data)["data"]
    assert ours.shape == (1, 3, 224, 224) and ours.dtype == np.float32
    # OpenCV's area resize vs Pillow's antialiased bilinear: the same picture, not the same bits.
    assert np.abs(ours[0] - classification_input(data)).mean() < 0.05


def test_client_side_detection_and_segmentation_tensors_follow_the_contracts(chelsea_rgb):
    data = bench._encode(chelsea_rgb, ".png")  # 451 x 300
    detection = bench.detection_tensors(data)
    assert detection["images"].shape == (1, 3, 800, 1202)  # scale 800/300: floor(451 * 2.667) = 1202
    assert detection["image_sizes"].tolist() == [[800, 1202]] and detection["image_sizes"].dtype == np.int64
    segmentation = bench.segmentation_tensors(data)["input"]
    assert segmentation.shape == (1, 3, 520, 520)
    assert not segmentation[0, :, 346:, :].any()  # 300 * 520/451 = 345.9 -> 346 rows, zero below


def test_load_generator_measures_the_completion_rate_of_a_steady_server():
    async def send(_index):
        await asyncio.sleep(0.02)  # a server answering in 20 ms

    result = asyncio.run(
        bench.drive(send, 2, warmup_s=0.05, duration_s=0.3, min_requests=4, max_point_s=5.0, on_window=None)
    )
    rate = len(result.latencies_s) / result.window_s
    assert 60 <= rate <= 105  # 2 workers x 50/s, minus event-loop slack
    assert min(result.latencies_s) >= 0.02
    assert result.errors == 0


def test_load_generator_waits_for_the_minimum_number_of_completions():
    async def send(_index):
        await asyncio.sleep(0.1)

    result = asyncio.run(bench.drive(send, 1, warmup_s=0.0, duration_s=0.01, min_requests=3, max_point_s=5.0))
    assert len(result.latencies_s) == 3


def test_load_generator_counts_errors_and_fails_when_nothing_succeeds():
    calls = {"n": 0}

    async def flaky(_index):
        calls["n"] += 1
        await asyncio.sleep(0.005)
        if calls["n"] % 3 == 0:
            raise RuntimeError("refused")

    result = asyncio.run(bench.drive(flaky, 1, warmup_s=0.0, duration_s=0.2, min_requests=2, max_point_s=5.0))
    assert result.errors >= 1 and "refused" in result.first_error

    async def broken(_index):
        raise RuntimeError("server gone")

    with pytest.raises(bench.BenchError, match="server gone"):
        asyncio.run(bench.drive(broken, 2, warmup_s=0.0, duration_s=0.1, min_requests=1, max_point_s=1.0))


def test_bench_writes_markdown_json_and_png(tmp_path):
    from tests.unit.test_bench_report import report

    written = bench.write_report(report(), tmp_path)
    assert [p.name for p in written] == [
        "bench-classification.md",
        "bench-classification.json",
        "bench-classification.png",
    ]
    assert "![throughput vs concurrency](bench-classification.png)" in written[0].read_text()


def test_served_config_line_names_instances_delays_and_threads():
    line = bench.instances_line(
        {
            "resnet18": {
                "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
                "dynamic_batching": {"max_queue_delay_microseconds": "0"},
                "parameters": {"intra_op_thread_count": {"string_value": "2"}},
            }
        }
    )
    assert line == "resnet18: 1 x KIND_CPU, delay 0 us, intra_op_thread_count 2"


def test_repository_path_default_is_relative_to_the_checkout():
    assert bench.BenchOptions().model_repository == Path("model_repository")


def test_proc_stat_line_with_spaces_and_parentheses_in_the_name_is_parsed():
    line = "4242 (triton (py) stub) S 4200 4242 4242 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 9 0 1 2 3"
    assert bench.parse_proc_stat(line) == (4242, 4200, 280)


def test_server_cpu_adds_the_server_and_all_its_descendants_only():
    stats = [(10, 1, 100), (11, 10, 50), (12, 11, 25), (13, 1, 1000)]  # 13 is someone else's process
    assert bench.tree_cpu_s(10, stats, ticks_per_s=100) == pytest.approx(1.75)


def test_server_cpu_of_this_process_tree_is_measured():
    import os

    assert bench.server_cpu_s(os.getpid()) > 0
    assert bench.server_cpu_s(None) is None
