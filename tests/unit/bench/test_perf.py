"""perf_analyzer's JSON input data made from real encoded images (no server)."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY, ROOT
from tests.support.modelconfigs import load_config
from triton_vision_bench.perf import (
    CONCURRENCY,
    MAX_TRIALS,
    MEASUREMENT_MS,
    STABILITY_PERCENTAGE,
    PerfInputError,
    PerfUsageError,
    perf_analyzer_data_command,
    write_input_data,
)
from triton_vision_models import tensors as t


@pytest.fixture
def images(tmp_path, chelsea_rgb) -> list:
    bgr = cv2.cvtColor(chelsea_rgb, cv2.COLOR_RGB2BGR)
    paths = [tmp_path / "a.jpg", tmp_path / "b.png", tmp_path / "c.png"]
    cv2.imwrite(str(paths[0]), bgr)
    cv2.imwrite(str(paths[1]), bgr)
    cv2.imwrite(str(paths[2]), cv2.resize(bgr, (90, 60)))
    return paths


def entries(path) -> list[dict]:
    return [entry[t.IMAGE] for entry in json.loads(path.read_text())["data"]]


def test_one_file_per_request_keeps_each_files_exact_bytes_and_length(images, tmp_path):
    written = entries(write_input_data(images, tmp_path / "one.json"))
    assert len(written) == len(images)
    for entry, path in zip(written, images, strict=True):
        assert base64.b64decode(entry["b64"]) == path.read_bytes()
        assert entry["shape"] == [path.stat().st_size]


def test_batched_rows_are_zero_padded_to_the_longest_file(images, tmp_path):
    written = entries(write_input_data(images, tmp_path / "batch.json", batch_size=3))
    longest = max(p.stat().st_size for p in images)
    for entry, path in zip(written, images, strict=True):
        row = base64.b64decode(entry["b64"])
        assert entry["shape"] == [longest] and len(row) == longest
        size = path.stat().st_size
        assert row[:size] == path.read_bytes()
        assert not np.frombuffer(row[size:], np.uint8).any()


def test_a_file_that_is_not_jpeg_or_png_is_refused_by_name(tmp_path):
    gif = tmp_path / "anim.gif"
    gif.write_bytes(b"GIF89a" + bytes(30))
    with pytest.raises(PerfInputError, match="anim.gif is not a JPEG or PNG"):
        write_input_data([gif], tmp_path / "x.json")


def test_no_images_and_a_missing_file_are_refused(tmp_path):
    with pytest.raises(PerfInputError, match="at least one"):
        write_input_data([], tmp_path / "x.json")
    with pytest.raises(PerfInputError, match="cannot read"):
        write_input_data([tmp_path / "absent.jpg"], tmp_path / "x.json")


@pytest.mark.parametrize("ensemble", [t.CLASSIFICATION, t.DETECTION, t.SEGMENTATION])
def test_batch_size_above_the_ensembles_max_batch_size_is_refused(images, tmp_path, ensemble):
    limit = load_config(MODEL_REPOSITORY / ensemble).max_batch_size
    with pytest.raises(PerfInputError, match=f"at most {limit} images"):
        perf_analyzer_data_command(images, tmp_path / "x.json", model=ensemble, batch_size=limit + 1)


def test_command_bounds_the_run_by_request_count_and_names_the_batch_size(images, tmp_path):
    command = perf_analyzer_data_command(
        images, tmp_path / "x.json", model=t.SEGMENTATION, batch_size=2, request_count=5, url="127.0.0.1:9"
    )
    assert command[command.index("-b") + 1] == "2"
    assert command[command.index("--request-count") + 1] == "5"
    assert "--measurement-interval" not in command
    assert command[command.index("--input-data") + 1] == str(tmp_path / "x.json")


def test_a_model_prefix_names_the_exported_ensemble_and_keeps_its_batch_limit(images, tmp_path):
    command = perf_analyzer_data_command(images, tmp_path / "x.json", model=t.CLASSIFICATION, model_prefix="tv_")
    assert command[command.index("-m") + 1] == "tv_classification"
    with pytest.raises(PerfInputError, match=f"at most {t.CLASSIFICATION_MAX_BATCH} images"):
        perf_analyzer_data_command(
            images, tmp_path / "x.json", model_prefix="tv_", batch_size=t.CLASSIFICATION_MAX_BATCH + 1
        )


def test_a_request_count_runs_one_concurrency_level(images, tmp_path):
    command = perf_analyzer_data_command(images, tmp_path / "x.json", request_count=5)  # the default range
    assert command[command.index("--concurrency-range") + 1] == "1"
    assert command[command.index("--request-count") + 1] == "5"
    two = perf_analyzer_data_command(images, tmp_path / "x.json", request_count=5, concurrency="2:2")
    assert two[two.index("--concurrency-range") + 1] == "2:2"
    # perf_analyzer refuses a request count unless the range's end is its start (1:4:5 visits 1 only).
    for text in ("1:4", "1:4:5"):
        with pytest.raises(
            PerfUsageError, match=f"--request-count runs one concurrency level, got --concurrency {text}"
        ):
            perf_analyzer_data_command(images, tmp_path / "x.json", request_count=5, concurrency=text)


@pytest.mark.parametrize("text", ["", "x", "0", "1:x", "4:1", "1:2:3:4", "-1"])
def test_a_concurrency_range_perf_analyzer_would_refuse_is_refused(images, tmp_path, text):
    with pytest.raises(PerfUsageError, match="--concurrency"):
        perf_analyzer_data_command(images, tmp_path / "x.json", concurrency=text)


def test_windows_settle_on_a_shared_cpu_by_default_and_the_docs_say_how(images, tmp_path):
    command = perf_analyzer_data_command(images, tmp_path / "x.json")
    assert command[command.index("--concurrency-range") + 1] == CONCURRENCY
    assert command[command.index("--measurement-interval") + 1] == str(MEASUREMENT_MS)
    assert int(command[command.index("--stability-percentage") + 1]) == STABILITY_PERCENTAGE > 10
    assert int(command[command.index("--max-trials") + 1]) == MAX_TRIALS > 10
    page = (ROOT / "docs" / "benchmarking.md").read_text()
    assert f"--stability-percentage {STABILITY_PERCENTAGE}" in page and f"--max-trials {MAX_TRIALS}" in page


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--request-count", "3", "--concurrency", "1:4"], "error: --request-count runs one concurrency level"),
        (["--concurrency", "four"], "error: --concurrency takes start[:end[:step]]"),
        (["--batch-size", "33"], "error: 'classification' takes at most 32 images per request, got batch size 33"),
        (["--stability-percentage", "0"], "error: --measurement-ms and --stability-percentage must be positive"),
    ],
)
def test_perf_usage_errors_are_one_line_and_exit_2_without_running_perf_analyzer(images, capsys, arguments, message):
    from triton_vision_cli.main import main

    assert main(["perf", str(images[0]), "--url", "127.0.0.1:9", *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and captured.err.count("\n") == 1, captured.err
    assert captured.out == ""  # no perf_analyzer command line, no perf_analyzer output


def test_perf_reads_the_servers_address_from_the_environment_like_the_client(images, tmp_path, monkeypatch, capsys):
    """`perf` without --url uses TRITON_VISION_URL, as classify does; a bad one is one line, exit 2."""
    from triton_vision_bench import perf_command
    from triton_vision_cli.main import build_parser

    seen = {}
    monkeypatch.setattr(perf_command, "run_perf_analyzer", lambda command: seen.setdefault("command", command) and 0)
    monkeypatch.setenv("TRITON_VISION_URL", "10.1.2.3:9001")
    args = build_parser("perf").parse_args(["perf", str(images[0]), "--request-count", "1"])
    assert perf_command.run(args) == 0
    command = seen["command"]
    assert command[command.index("-u") + 1] == "10.1.2.3:9001"
    monkeypatch.setenv("TRITON_VISION_URL", "http://10.1.2.3:9001")
    assert perf_command.run(build_parser("perf").parse_args(["perf", str(images[0])])) == 2
    assert capsys.readouterr().err.startswith("error: TRITON_VISION_URL=http://10.1.2.3:9001: give HOST:PORT")
