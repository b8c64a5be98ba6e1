"""``triton-vision bench`` pieces that need no server: the command line, profiles read from the
repository, the repository it serves, the photos, the load generator, the served-config line."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY, copy_model_dirs, ensemble_repository
from tests.support.modelconfigs import step_models
from triton_vision_bench import images as bench_images
from triton_vision_bench import load, profiles, served
from triton_vision_bench.messages import BenchError, BenchUsageError
from triton_vision_bench.options import parse_concurrency
from triton_vision_bench.perf import perf_analyzer_csv
from triton_vision_bench.render import write_report
from triton_vision_bench.repository import bench_repository
from triton_vision_cli.main import main
from triton_vision_models import tensors as t
from triton_vision_models.repository import ModelRepository

BUILT_IN_ONNX = {
    t.CLASSIFICATION: (t.CLASSIFIER, {t.CLASSIFIER_INPUT: t.PIXELS}, (t.CLASSIFIER_OUTPUT,)),
    t.DETECTION: (t.DETECTOR, {t.DETECTOR_INPUT: t.PIXELS}, (t.DETECTOR_BOXES, t.DETECTOR_LABELS, t.DETECTOR_SCORES)),
    t.SEGMENTATION: (t.SEGMENTER, {t.SEGMENTER_INPUT: t.PIXELS}, (t.SEGMENTER_OUTPUT,)),
}


# -- the command line -------------------------------------------------------------------------
def test_concurrency_list_is_parsed_sorted_and_bounded():
    assert parse_concurrency("4,1,2,2") == (1, 2, 4)
    for bad in ("", "0", "1,x", "300"):
        with pytest.raises(BenchUsageError, match="concurrency"):
            parse_concurrency(bad)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--ensemble", "nope"], "error: no ensemble 'nope' in model_repository (ensembles: classification, detection"),
        (["--ensemble", t.CLASSIFIER], f"error: no ensemble '{t.CLASSIFIER}'"),  # a model, not an ensemble
        (["--concurrency", "1,0"], "error: --concurrency values must be in 1..256, got '1,0'"),
        (["--baseline-concurrency", "x"], "error: --baseline-concurrency takes integers separated by commas, got 'x'"),
        (["--duration", "0"], "error: --duration must be positive, got 0"),
        (["--model-repository", "absent"], "error: model repository absent does not exist: `triton-vision init"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2_before_anything_starts(monkeypatch, capsys, arguments, message):
    monkeypatch.chdir(MODEL_REPOSITORY.parent)
    assert main(["bench", *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and captured.err.count("\n") == 1, captured.err
    assert captured.out == ""


# -- profiles from the repository -------------------------------------------------------------
@pytest.mark.parametrize("ensemble", list(BUILT_IN_ONNX))
def test_built_in_profiles_follow_each_ensembles_config(ensemble):
    profile = profiles.profile(ModelRepository.load(MODEL_REPOSITORY), ensemble)
    model, inputs, outputs = BUILT_IN_ONNX[ensemble]
    assert (profile.task, profile.model, profile.model_inputs, profile.model_outputs) == (
        ensemble,
        model,
        inputs,
        outputs,
    )
    assert list(profile.steps) == step_models(MODEL_REPOSITORY, ensemble)
    assert profile.model_path == MODEL_REPOSITORY / model / "1" / "model.onnx"


def test_built_in_task_settings_are_unchanged():
    settings = profiles.TASK_SETTINGS
    assert settings[t.CLASSIFICATION] == profiles.TaskSettings(8, (1, 2, 4, 8, 16), (1, 2, 4, 8, 16), 8)
    assert settings[t.DETECTION] == profiles.TaskSettings(1, (1, 2), (1, 2), 2)
    assert settings[t.SEGMENTATION] == profiles.TaskSettings(2, (1, 2, 4), (1, 2), 2)


def test_a_renamed_ensemble_with_a_renamed_onnx_input_is_profiled_by_its_task(tmp_path, chelsea_rgb):
    """export-repo --prefix renames every model; then the ONNX model's input is renamed too."""
    from triton_vision_authoring.export_repo import export_repository

    source = ensemble_repository(tmp_path / "source", t.CLASSIFICATION)
    dest = tmp_path / "exported"
    export_repository(source, dest, prefix="tv_", models=[t.CLASSIFICATION])
    for name in (f"tv_{t.CLASSIFICATION_INFER}", f"tv_{t.CLASSIFIER}"):
        config = dest / name / "config.pbtxt"
        config.write_text(config.read_text().replace(f'"{t.CLASSIFIER_INPUT}"', '"input_1"'))
    profile = profiles.profile(ModelRepository.load(dest), f"tv_{t.CLASSIFICATION}")
    assert (profile.task, profile.model) == (t.CLASSIFICATION, f"tv_{t.CLASSIFIER}")
    assert profile.model_inputs == {"input_1": t.PIXELS}
    tensors = profile.preprocess(bench_images.encode(chelsea_rgb, ".png"))
    assert list(tensors) == ["input_1"] and tensors["input_1"].shape == (1, 3, 224, 224)


def test_ensembles_the_bench_cannot_measure_are_refused_by_name(tmp_path):
    repository = copy_model_dirs(
        tmp_path / "repo", [t.CLASSIFICATION, *step_models(MODEL_REPOSITORY, t.CLASSIFICATION)]
    )
    (repository / "guard_only").mkdir()
    (repository / "guard_only" / "config.pbtxt").write_text(
        'name: "guard_only" platform: "ensemble" max_batch_size: 32\n'
        'input [ { name: "IMAGE" data_type: TYPE_UINT8 dims: [ -1 ] } ]\n'
        'output [ { name: "CHECKED" data_type: TYPE_UINT8 dims: [ -1 ] } ]\n'
        'ensemble_scheduling { step [ { model_name: "image_guard" model_version: -1\n'
        '  input_map { key: "IMAGE" value: "IMAGE" } output_map { key: "CHECKED_IMAGE" value: "CHECKED" } } ] }\n'
    )
    loaded = ModelRepository.load(repository)
    assert loaded["guard_only"].is_ensemble
    with pytest.raises(BenchUsageError, match=r"'guard_only' \(outputs CHECKED\) is of no task the bench knows"):
        profiles.profile(loaded, "guard_only")
    (repository / t.CLASSIFIER / "config.pbtxt").write_text(
        (repository / t.CLASSIFIER / "config.pbtxt")
        .read_text()
        .replace('platform: "onnxruntime_onnx"', 'backend: "python"')
    )
    with pytest.raises(BenchUsageError, match="needs exactly one ONNX Runtime step for the bench, has none"):
        profiles.profile(ModelRepository.load(repository), t.CLASSIFICATION)


# -- the repository it serves -------------------------------------------------------------------
def test_bench_repository_holds_the_ensemble_and_its_steps_with_linked_onnx_files(tmp_path):
    source = ensemble_repository(tmp_path / "source", t.CLASSIFICATION)  # model_info too
    (source / t.CLASSIFIER / "1" / "model.onnx").write_bytes(b"onnx")
    profile = profiles.profile(ModelRepository.load(source), t.CLASSIFICATION)
    target = bench_repository(source, profile, tmp_path / "bench")
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [t.CLASSIFICATION, *step_models(source, t.CLASSIFICATION)]
    )
    link = target / t.CLASSIFIER / "1" / "model.onnx"
    assert link.is_symlink() and link.resolve() == (source / t.CLASSIFIER / "1" / "model.onnx").resolve()
    for name in step_models(source, t.CLASSIFICATION):
        assert (target / name / "config.pbtxt").read_text() == (source / name / "config.pbtxt").read_text()


# -- the photos ---------------------------------------------------------------------------------
def test_without_photos_the_bench_uses_scikit_image_photos_as_jpeg_and_png(tmp_path):
    import cv2

    images = bench_images.bench_images(limit=6, photos=tmp_path / "absent")
    assert [i.format for i in images] == ["JPEG", "PNG"] * 3
    for image in images:
        decoded = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)
        assert (decoded.shape[1], decoded.shape[0]) == (image.width, image.height)
    jpegs, pngs = images[0::2], images[1::2]
    for jpeg, png in zip(jpegs, pngs, strict=True):  # the PNG: the same photo, longer side 640 at most
        assert max(png.width, png.height) == min(640, max(jpeg.width, jpeg.height))
        assert png.width / png.height == pytest.approx(jpeg.width / jpeg.height, rel=0.01)


def test_image_count_is_bounded_and_given_files_are_checked(tmp_path):
    assert len(bench_images.bench_images(limit=1000)) == min(6, bench_images.MAX_IMAGES)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(BenchUsageError, match="notes.txt: not an image OpenCV can decode"):
        bench_images.bench_images([tmp_path / "notes.txt"])
    with pytest.raises(BenchUsageError, match="absent.jpg: cannot read it"):
        bench_images.bench_images([tmp_path / "absent.jpg"])


def test_perf_analyzers_image_is_the_median_jpeg():
    def image(name, size):
        return bench_images.BenchImage(name, b"\xff\xd8\xff" + bytes(size), 1, 1)

    png = bench_images.BenchImage("big.png", b"\x89PNG" + bytes(10_000), 1, 1)
    chosen = bench_images.median_jpeg([image("a", 30), png, image("b", 10), image("c", 20)])
    assert chosen.name == "c"


# -- the load generator: a fake server on a fake clock -------------------------------------------
class SerialServer:
    """Answers one request at a time, each taking ``service_s`` of a clock only it moves."""

    def __init__(self, service_s: float, fail_every: int = 0) -> None:
        self.now = 0.0
        self.service_s = service_s
        self.fail_every = fail_every
        self.calls = 0
        self.lock = asyncio.Lock()

    def clock(self) -> float:
        return self.now

    async def send(self, _index: int) -> None:
        async with self.lock:
            await asyncio.sleep(0)
            self.now += self.service_s
            self.calls += 1
            if self.fail_every and self.calls % self.fail_every == 0:
                raise RuntimeError("refused")


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_load_generator_measures_a_serial_servers_rate_and_queueing(monkeypatch, concurrency):
    server = SerialServer(0.25)  # 4 requests/s, whatever the concurrency
    monkeypatch.setattr(load.time, "perf_counter", server.clock)
    result = asyncio.run(
        load.drive(server.send, concurrency, warmup_s=1.0, duration_s=3.0, min_requests=3, max_point_s=50.0)
    )
    assert len(result.latencies_s) / result.window_s == pytest.approx(4.0)
    # In the steady state each request waits for the others in flight: concurrency x service time.
    assert sorted(result.latencies_s)[len(result.latencies_s) // 2] == pytest.approx(0.25 * concurrency)
    assert result.errors == 0


def test_load_generator_waits_for_the_minimum_number_of_completions(monkeypatch):
    server = SerialServer(0.5)
    monkeypatch.setattr(load.time, "perf_counter", server.clock)
    result = asyncio.run(load.drive(server.send, 1, warmup_s=0.0, duration_s=0.01, min_requests=5, max_point_s=50.0))
    assert len(result.latencies_s) == 5 and result.window_s == pytest.approx(2.5)


def test_load_generator_counts_errors_and_fails_when_nothing_succeeds(monkeypatch):
    server = SerialServer(0.25, fail_every=3)
    monkeypatch.setattr(load.time, "perf_counter", server.clock)
    result = asyncio.run(load.drive(server.send, 1, warmup_s=0.0, duration_s=3.0, min_requests=2, max_point_s=50.0))
    # One request in three fails; the window counts the others only.
    assert result.errors == pytest.approx(len(result.latencies_s) / 2, abs=1)
    assert result.first_error == "RuntimeError: refused"

    async def broken(_index):
        raise RuntimeError("server gone")

    with pytest.raises(BenchError, match="no measurement at concurrency 2: .*server gone"):
        asyncio.run(load.drive(broken, 2, warmup_s=0.0, duration_s=0.1, min_requests=1, max_point_s=1.0))


def test_the_load_generator_keeps_latencies_by_the_kind_send_names(monkeypatch):
    server = SerialServer(0.25)
    monkeypatch.setattr(load.time, "perf_counter", server.clock)

    async def send(index: int) -> str:
        await server.send(index)
        return "repeat" if server.calls % 2 else "fresh"

    result = asyncio.run(load.drive(send, 1, warmup_s=0.0, duration_s=2.0, min_requests=4, max_point_s=50.0))
    kinds = result.latencies_by_kind
    assert set(kinds) == {"repeat", "fresh"} and abs(len(kinds["repeat"]) - len(kinds["fresh"])) <= 1
    assert len(kinds["repeat"]) + len(kinds["fresh"]) == len(result.latencies_s)


def test_a_repeats_new_image_is_new_bytes_that_decode_and_pass_the_guard_as_the_image(chelsea_rgb):
    """The repeated-image workload's fresh requests: the photo plus a trailer after its end."""
    import cv2

    from tests.support.modelconfigs import config_for
    from tests.support.runners import run_request
    from triton_vision_bench.sweep import unique_bytes
    from triton_vision_models.dali_runner import DaliRunner
    from triton_vision_models.imageguard import ImageLimits, check_image

    runner = DaliRunner.from_config(config_for(MODEL_REPOSITORY / t.CLASSIFICATION_PREPROCESS))
    for ext in (".jpg", ".png"):
        data = bench_images.encode(chelsea_rgb, ext)
        first, second = unique_bytes(data, 1), unique_bytes(data, 2)
        assert len({data, first, second}) == 3 and first.startswith(data) and first[-1] != 0
        assert check_image(first, ImageLimits()) == check_image(data, ImageLimits())
        np.testing.assert_array_equal(
            cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR),
            cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
        )
        pixels = [run_request(runner, {t.IMAGE: np.frombuffer(d, np.uint8)[None]})[t.PIXELS] for d in (data, first)]
        np.testing.assert_array_equal(pixels[0], pixels[1])


# -- the served configs, perf_analyzer's CSV, the files -----------------------------------------
def test_served_config_line_names_instances_delays_and_threads():
    line = served.instances_line(
        {
            "resnet18": {
                "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
                "dynamic_batching": {"max_queue_delay_microseconds": "0"},
                "parameters": {"intra_op_thread_count": {"string_value": "2"}, "labels": {"string_value": "x"}},
            },
            "classification": {},
        }
    )
    assert line == "resnet18: 1 x KIND_CPU, delay 0 us, intra_op_thread_count 2; classification: -"


def test_perf_analyzer_csv_rows_become_numbers(tmp_path):
    path = tmp_path / "pa.csv"
    path.write_text(
        "Concurrency,Inferences/Second,Client Send,p50 latency,p90 latency,p95 latency,p99 latency,Avg latency\n"
        "4,41.5,120,95000,120000,130000,150000,97000\n"
        "8,n/a,120,95000,120000,130000,150000,97000\n"
    )
    first, second = perf_analyzer_csv(path)
    assert first["Concurrency"] == 4 and first["Inferences/Second"] == 41.5 and first["p99 latency"] == 150000
    assert np.isnan(second["Inferences/Second"])


def test_bench_writes_markdown_json_and_png(tmp_path):
    import json

    from tests.unit.bench.test_report import report

    data = report()
    written = write_report(data, tmp_path)
    assert [p.name for p in written] == [
        "bench-classification.md",
        "bench-classification.json",
        "bench-classification.png",
    ]
    markdown = written[0].read_text()
    assert markdown.index("![throughput vs concurrency](bench-classification.png)") < markdown.index("## Summary")
    assert json.loads(written[1].read_text())["summary"]["ensemble_best_images_per_s"] == 46.0
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_photos_folder_sends_each_jpeg_as_it_is_and_as_a_png(tmp_path, chelsea_rgb):
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    original = cv2.imencode(".jpg", cv2.cvtColor(chelsea_rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    (folder / "chelsea.jpg").write_bytes(original)
    images = bench_images.bench_images(limit=8, photos=folder)
    assert [i.format for i in images] == ["JPEG", "PNG"] and images[0].data == original
