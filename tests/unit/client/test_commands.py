"""The client's commands against a fake Triton over HTTP (tests/support/fake_triton.py): what they
write, what they refuse before sending, and what they say about what the server has. (The real
tritonserver: tests/integration/test_folder_jobs.py, test_any_ensemble.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.fake_triton import ensemble, fake_triton, repository
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


# -- a repository exported with a prefix, served alone ------------------------------------------------
PREFIXED = "tv_classification, tv_detection, tv_segmentation"
ADVICE = f"it has {PREFIXED}: give --model-prefix tv_ (a repository exported with `export-repo --prefix tv_`)"


@pytest.fixture(scope="module")
def prefixed_server():
    with fake_triton(repository("tv_")) as running:
        yield running


def test_ensembles_of_a_prefixed_repository_without_the_prefix_names_the_prefix(prefixed_server, capsys):
    url = prefixed_server.url
    code, stdout, stderr = run(capsys, "ensembles", "--url", url, "--protocol", "http")
    assert (code, stdout.strip(), stderr) == (0, f"the server at {url} has no ensembles; {ADVICE}", "")
    code, stdout, _ = run(capsys, "ensembles", "--url", url, "--protocol", "http", "--json")
    assert json.loads(stdout) == {
        "url": url,
        "protocol": "http",
        "ensembles": [],
        "other_prefixes": {"tv_": PREFIXED.split(", ")},
    }
    code, stdout, _ = run(capsys, "ensembles", "--url", url, "--protocol", "http", "--model-prefix", "tv_")
    assert code == 0 and [line.split()[0] for line in stdout.splitlines()[1:]] == PREFIXED.split(", ")


def test_probe_and_classify_of_a_prefixed_repository_name_the_prefix(prefixed_server, tmp_path, capsys):
    url = prefixed_server.url
    code, _, stderr = run(capsys, "probe", "--url", url, "--protocol", "http")
    assert (code, stderr.strip()) == (1, f"UNHEALTHY: the server at {url} serves no ensemble; {ADVICE}")
    image = write_image(tmp_path / "a.jpg")
    code, stdout, stderr = run(capsys, "classify", str(image), "--url", url, "--protocol", "http")
    assert (code, stdout) == (3, "")
    assert stderr.strip() == f"error: the server at {url} does not serve the 'classification' ensemble; {ADVICE}"
    assert run(capsys, "classify", str(image), "--url", url, "--protocol", "http", "--model-prefix", "tv_")[0] == 0


def test_without_model_info_the_repository_index_gives_the_prefixed_ensembles(capsys):
    """A bare tritonserver (its repository index open) with model_info not loaded: the index names
    the prefixed built-in ensembles."""
    with fake_triton(repository("tv_"), index_open=True, unloaded={"tv_model_info"}) as server:
        code, stdout, _ = run(capsys, "ensembles", "--url", server.url, "--protocol", "http")
    assert (code, stdout.strip()) == (0, f"the server at {server.url} has no ensembles; {ADVICE}")


def test_a_prefix_the_server_does_not_have_says_the_ensembles_are_unprefixed(server, capsys):
    code, stdout, _ = run(capsys, "ensembles", "--url", server.url, "--protocol", "http", "--model-prefix", "x_")
    assert (code, stdout.strip()) == (
        0,
        f"the server at {server.url} has no ensembles named x_*; it has classification, detection, "
        "segmentation, without a prefix: leave out --model-prefix",
    )


def test_an_unknown_ensemble_lists_those_of_its_task(server, tmp_path, capsys):
    image = write_image(tmp_path / "a.jpg")
    code, _, stderr = run(
        capsys, "classify", str(image), "--ensemble", "nosuch", "--url", server.url, "--protocol", "http"
    )
    assert (code, stderr.strip()) == (
        3,
        f"error: the server at {server.url} does not serve the 'nosuch' ensemble; its classification "
        "ensembles: classification (--ensemble NAME)",
    )


def test_a_folder_with_subfolders_without_r_and_missing_inputs_say_so(server, tmp_path, capsys):
    write_image(tmp_path / "photos" / "a.jpg")
    write_image(tmp_path / "photos" / "sub" / "b.jpg")
    write_image(tmp_path / "photos" / "other" / "c.jpg")
    missing = [str(tmp_path / "nosuch.jpg"), str(tmp_path / "nosuchdir")]
    argv = ["classify", str(tmp_path / "photos"), *missing, "--format", "jsonl"]
    code, stdout, stderr = run(capsys, *argv, "--url", server.url, "--protocol", "http")
    assert code == 1
    records = {record["path"]: record for record in map(json.loads, stdout.splitlines())}
    assert set(records) == {str(tmp_path / "photos" / "a.jpg"), *missing}
    for path in missing:
        assert (records[path]["error"], records[path]["reason"]) == (f"no such file or directory: {path}", "not found")
    assert "skipped 2 subfolders (give -r to take their images too)" in stderr.splitlines()
    code, _, stderr = run(capsys, *argv[:2], "-r", "--url", server.url, "--protocol", "http")
    assert code == 0 and "subfolder" not in stderr


def test_a_batch_above_a_one_image_ensembles_maximum_is_refused_in_the_singular(tmp_path, capsys):
    pets = ensemble("pets", "classification", ["classification_infer", "classify_post"], max_batch_size=1)
    with fake_triton([*repository(), pets]) as one:
        argv = ["classify", str(write_image(tmp_path / "a.jpg")), "--ensemble", "pets", "--batch", "2"]
        code, _, stderr = run(capsys, *argv, "--url", one.url, "--protocol", "http")
    assert (code, stderr.strip()) == (
        2,
        "error: the 'pets' ensemble takes at most 1 image per request (its max_batch_size), not 2: give --batch 1 "
        "or less, or leave it out",
    )
