"""The examples of examples/<name>/, run from their folders' files as their READMEs say.

Each example folder is copied into a project-like folder (an empty model_repository, the data
folder as ../shared beside it) and its README's commands run there unchanged: only `python` and
`triton-vision` are this environment's, and the server is a private one on free ports instead of
`serve &` on the default ones. The YOLO and DeepLab specs are served next to same-contract
stand-in files (Ultralytics and a DeepLab export are not available here), added, served and asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import ROOT, SHARED, shared_path
from tests.integration.conftest import running_server
from tests.support.cli import encode
from tests.support.detection import bright_rectangle_image

pytestmark = pytest.mark.integration

EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


def readme_blocks(name: str) -> list[tuple[str, str]]:
    """(language, text) of the code blocks of ``examples/<name>/README.md``, in order."""
    return re.findall(r"```(\w*)\n(.*?)```", (EXAMPLES / name / "README.md").read_text(), flags=re.S)


def readme_commands(name: str) -> list[str]:
    """The command lines of the example README's first shell block, comments dropped."""
    script = next(text for language, text in readme_blocks(name) if language == "bash")
    return [line.split("#")[0].strip() for line in script.strip().splitlines()]


def run(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """A README command line with this environment's ``python`` and ``triton-vision``."""
    command = shlex.split(line)
    if command[0] == "python":
        command[0] = sys.executable
    elif command[0] == "triton-vision":
        command[0] = str(BIN / "triton-vision")
    env = {**os.environ, "TRITON_VISION_DATA": str(cwd.parent / "shared")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def served_from(text: str, model: str) -> tuple[str, str, str]:
    """(file name, sha256, the rest) of add-model's line ``MODEL/1/model.onnx: from PATH (sha256 ...)``."""
    found = re.search(rf"{model}/1/model\.onnx: from \S*/([^/\s]+) \(sha256 (\w+)\.\.\.(.*)\)$", text, flags=re.M)
    assert found is not None, text
    return found[1], found[2], found[3]


def check_served_from(name: str, printed: str, model: str, source: Path) -> None:
    """add-model names ``source`` with that file's own sha256, as the example's README quotes it."""
    said = served_from(printed, model)
    assert said[:2] == (source.name, hashlib.sha256(source.read_bytes()).hexdigest()[:12])
    assert said == served_from(next(text for _, text in readme_blocks(name) if "model.onnx: from" in text), model)


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A project-like folder: examples/, an empty model_repository, ../shared beside it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not available (the data folder is absent: TRITON_VISION_DATA)")
    (tmp_path / "shared").symlink_to(SHARED)
    work = tmp_path / "work"
    (work / "model_repository").mkdir(parents=True)
    shutil.copytree(EXAMPLES, work / "examples")
    return work


def test_the_pets_example_answers_its_own_labels(workdir):
    shared_path("models/mobilenetv2-12-int8.onnx")
    lines = readme_commands("pets")
    serve = next(line for line in lines if " serve" in line)
    classify = next(line for line in lines if " classify " in line)
    for line in lines[: lines.index(serve)]:
        done = run(line, workdir)
        assert done.returncode == 0, (line, done.stderr)
        if " add-model " in line:
            check_served_from("pets", done.stdout, "pets_model", workdir / "examples" / "pets" / "pets.onnx")
    assert (workdir / "examples" / "pets" / "pets.onnx").is_file()
    assert (workdir / "model_repository" / "pets" / "spec.toml").is_file()
    with running_server(workdir / "model_repository") as server:
        done = run(f"{classify} --url {server.options.grpc_url}", workdir)
        too_many = run(f"{classify} --url {server.options.grpc_url} --top-k 9", workdir)
        other_task = run(
            f"triton-vision detect ../shared/images/kitten.jpg --ensemble pets --url {server.options.grpc_url}", workdir
        )
    assert done.returncode == 0, done.stderr
    # The README quotes both refusals as the commands print them (exit 2: nothing was sent).
    prose = " ".join((ROOT / "examples" / "pets" / "README.md").read_text().split())
    for refused in (too_many, other_task):
        assert refused.returncode == 2, refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert f"`{line}`" in prose, line
    kitten, dog = done.stdout.split("../shared/images/dog.jpg:")
    assert "tabby" in kitten and "tiger cat" in kitten  # the README's answer: tabby 0.5095, tiger cat 0.3699
    assert dog.split("\n")[1].split()[-1] == "kuvasz"  # dog.jpg's top label
    # The README shows this output: its numbers are what the example prints.
    shown = next(text for language, text in readme_blocks("pets") if "classified 2 of 2" in text)
    assert re.search(r"0\.5095\s+0\s+tabby", shown) and re.search(r"0\.50\d\d\s+0\s+tabby", kitten)


def test_the_mobilenet_v1_example_is_served_one_image_per_request(workdir):
    shared_path("models/mobilenet_v1_0.25_224.onnx")
    (add_model,) = [line for line in readme_commands("mobilenet_v1") if " add-model " in line]
    done = run(add_model, workdir)
    assert done.returncode == 0, done.stderr
    shown = next(text for language, text in readme_blocks("mobilenet_v1") if "max_batch_size 1" in text)
    said = next(line for line in shown.splitlines() if "fixed batch of 1" in line).strip()
    assert said in done.stdout  # the README's line, as add-model prints it
    check_served_from(
        "mobilenet_v1", done.stdout, "mobilenet_v1_model", SHARED / "models" / "mobilenet_v1_0.25_224.onnx"
    )
    config = (workdir / "model_repository" / "mobilenet_v1_model" / "config.pbtxt").read_text()
    assert "max_batch_size: 1" in config


def test_the_torchvision_detection_example_adds_its_own_ensemble_and_says_how_to_make_its_file(workdir):
    """The README's add-model line writes the ensemble beside the (empty) repository's other models and
    prints the README's quoted lines; its model file is `models prepare`'s (tested with a real export in
    test_detection.py)."""
    lines = readme_commands("torchvision_detection")
    (add_model,) = [line for line in lines if " add-model " in line]
    assert any(line.startswith("triton-vision models prepare --model faster_rcnn_torchvision") for line in lines)
    done = run(add_model, workdir)
    assert done.returncode == 0, done.stderr
    shown = next(text for language, text in readme_blocks("torchvision_detection") if "not yet" in text)
    for line in filter(None, shown.splitlines()):
        assert line in done.stdout.splitlines(), (line, done.stdout)
    config = (workdir / "model_repository" / "faster_rcnn_torchvision" / "config.pbtxt").read_text()
    assert "max_batch_size: 4" in config and 'name: "image_sizes"' in config


def yolo_stand_in(classes: int = 80, size: int = 640) -> onnx.ModelProto:
    """Ultralytics' export contract: images [1, 3, 640, 640] -> output0 [1, 4 + 80, 64] (random weights)."""
    rng = np.random.default_rng(0)
    grid = size // 8
    weights = rng.normal(0, 0.5, (4 + classes, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[grid, grid], strides=[grid, grid]),
        helper.make_node("Conv", ["pooled", "w"], ["raw"]),
        helper.make_node("Sigmoid", ["raw"], ["unit"]),
        helper.make_node("Mul", ["unit", "scale"], ["scaled"]),
        helper.make_node("Reshape", ["scaled", "shape"], ["output0"]),
    ]
    scale = np.ones((1, 4 + classes, 1, 1), np.float32)
    scale[0, :4] = size / 2  # centres and sizes within the image
    graph = helper.make_graph(
        nodes,
        "yolo_stand_in",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + classes, 64])],
        [
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(scale, "scale"),
            numpy_helper.from_array(np.array([1, 4 + classes, 64], np.int64), "shape"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def deeplab_stand_in(classes: int = 21, size: int = 512) -> onnx.ModelProto:
    """A TF-style export: input [1, 512, 512, 3] NHWC -> logits [1, 128, 128, 21] NHWC (random weights)."""
    weights = np.random.default_rng(1).normal(0, 1, (classes, 3, 4, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w"], ["logits_nchw"], strides=[4, 4]),
        helper.make_node("Transpose", ["logits_nchw"], ["logits"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "deeplab_stand_in",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, size, size, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, size // 4, size // 4, classes])],
        [numpy_helper.from_array(weights, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_the_yolo_and_deeplab_examples_serve_same_contract_files(workdir):
    onnx.save(yolo_stand_in(), str(workdir / "examples" / "yolo" / "yolov8n.onnx"))
    onnx.save(deeplab_stand_in(), str(workdir / "examples" / "deeplab" / "deeplab.onnx"))
    for name in ("yolo", "deeplab"):
        (add_model,) = [line for line in readme_commands(name) if " add-model " in line]
        done = run(add_model, workdir)
        assert done.returncode == 0, done.stderr
    photo = workdir / "box.png"
    photo.write_bytes(encode(bright_rectangle_image(480, 640, (100, 80, 300, 240)), ".png"))
    with running_server(workdir / "model_repository") as server:
        url = server.options.grpc_url
        detected = run(
            f"triton-vision detect {photo} --ensemble yolo --format jsonl --url {url} --out {workdir / 'out'}", workdir
        )
        segmented = run(
            f"triton-vision segment {photo} --ensemble deeplab --format jsonl --url {url} --out {workdir / 'out'}",
            workdir,
        )
    assert detected.returncode == 0, detected.stderr
    assert segmented.returncode == 0, segmented.stderr
    boxes = json.loads(detected.stdout)["detections"]
    assert all(0 <= x <= 640 and 0 <= y <= 480 for d in boxes for x, y in (d["box"][:2], d["box"][2:]))
    mask = json.loads(segmented.stdout)
    assert (mask["height"], mask["width"]) == (480, 640)  # back at the photo's own size
