"""perf_analyzer's JSON input data made from real encoded images (no server)."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY
from tests.modelconfigs import load_config
from triton_vision_models import tensors as t
from triton_vision_server.perf import PerfInputError, perf_analyzer_data_command, write_input_data


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
