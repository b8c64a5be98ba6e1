"""The client's commands against a fake Triton over HTTP (tests/support/fake_triton.py): what they
write, what they refuse before sending, and what they say about what the server has. (The real
tritonserver: tests/integration/test_folder_jobs.py, test_any_ensemble.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.fake_triton import fake_triton, repository
from triton_vision_cli.main import main


@pytest.fixture(scope="module")
def server():
    with fake_triton(repository()) as running:
        yield running


def write_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((12, 16, 3), 90, np.uint8))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("command", "suffix", "field"), [("detect", ".detections.jpg", "annotated"), ("segment", "_mask.png", "mask")]
)
def test_inputs_of_the_same_name_get_outputs_of_their_own_in_input_order(
    server, tmp_path, capsys, command, suffix, field
):
    inputs = [
        write_image(tmp_path / "a" / "kitten.jpg"),
        write_image(tmp_path / "b" / "kitten.jpg"),
        write_image(tmp_path / "b" / "kitten.png"),  # the same stem: the same output name
        write_image(tmp_path / "c" / "kitten-2.jpg"),  # the name the second kitten gets: taken, so -2-2
    ]
    out = tmp_path / "out"
    argv = [command, *map(str, inputs), "--out", str(out), "--format", "jsonl", "--batch", "1"]
    code, stdout, stderr = run(capsys, *argv, "--url", server.url, "--protocol", "http")
    assert code == 0, stderr
    expected = [f"kitten{suffix}", f"kitten-2{suffix}", f"kitten-3{suffix}", f"kitten-2-2{suffix}"]
    assert sorted(path.name for path in out.iterdir()) == sorted(expected)
    written = {record["path"]: record[field] for record in map(json.loads, stdout.splitlines())}
    assert written == {str(path): str(out / name) for path, name in zip(inputs, expected, strict=True)}
    assert (
        f"3 outputs renamed: their inputs share a name under --out (first: {inputs[1]} -> {out / expected[1]})"
        in stderr.splitlines()
    )


def test_a_top_k_above_the_ensembles_classes_is_refused_before_anything_is_sent(server, tmp_path, capsys):
    for index in range(3):
        write_image(tmp_path / "photos" / f"{index}.jpg")
    server.requests.clear()
    argv = ["classify", str(tmp_path / "photos"), "--top-k", "5000", "--url", server.url, "--protocol", "http"]
    code, stdout, stderr = run(capsys, *argv)
    assert code == 2
    assert stderr.strip() == (
        "error: the 'classification' ensemble has 1000 classes: --top-k 5000 asks for more labels than it "
        "has (give --top-k 1000 or less)"
    )
    assert stdout == "" and server.inferred.count("classification") == 0
    code, stdout, stderr = run(capsys, *argv[:2], "--top-k", "1000", *argv[4:])
    assert code == 0, stderr
    assert server.inferred.count("classification") == 1
