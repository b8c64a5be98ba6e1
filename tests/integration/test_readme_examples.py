"""The README's "Your own model" examples, run as written.

Each `<!-- example: NAME -->` section's code blocks are taken from the README itself: the pets
example's Python and shell lines run unchanged (only `.venv/bin/` is this environment's, and the
server is a private one on free ports instead of `serve &` on the default ones); the YOLO and
DeepLab specs are written as they stand next to stand-in files of the same tensor signature (Ultralytics and a
DeepLab export are not available here), added, served and asked.
"""

from __future__ import annotations

import re
import shlex
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

README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def example_blocks(name: str) -> list[tuple[str, str]]:
    """(language, text) of the code blocks of the README's ``<!-- example: name -->`` section."""
    section = README.split(f"<!-- example: {name} -->", 1)[1]
    section = re.split(r"\n<!-- example: |\n## ", section, maxsplit=1)[0]
    return re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)


def run(line: str, cwd: Path) -> subprocess.CompletedProcess:
    command = shlex.split(line.replace(".venv/bin/", f"{BIN}/"))
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A project-like folder: an empty model_repository, ../shared beside it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not available (../shared is absent)")
    (tmp_path / "shared").symlink_to(SHARED)
    work = tmp_path / "work"
    (work / "model_repository").mkdir(parents=True)
    return work


def test_the_fine_tuned_classifier_example_answers_its_own_labels(workdir):
    shared_path("models/mobilenetv2-12-int8.onnx")
    (_, script), (_, spec), (_, commands) = example_blocks("pets")[:3]
    (workdir / "make_pets.py").write_text(script)
    (workdir / "pets.toml").write_text(spec)
    lines = [line.split("#")[0].strip() for line in commands.strip().splitlines()]
    serve = next(line for line in lines if " serve" in line)
    classify = next(line for line in lines if " classify " in line)
    for line in lines[: lines.index(serve)]:
        if line.startswith("printf"):  # the shell builtin, as a user's shell runs it
            subprocess.run(line, shell=True, cwd=workdir, check=True)
            continue
        done = run(line, workdir)
        assert done.returncode == 0, (line, done.stderr)
    assert (workdir / "model_repository" / "pets" / "spec.toml").is_file()
    with running_server(workdir / "model_repository") as server:
        done = run(f"{classify} --url {server.options.grpc_url}", workdir)
    assert done.returncode == 0, done.stderr
    kitten, dog = done.stdout.split("../shared/images/dog.jpg:")
    assert "tabby" in kitten and "tiger cat" in kitten  # the README's answer: tabby 0.439, tiger cat 0.439
    assert dog.split("\n")[1].split()[-1] == "kuvasz"  # dog.jpg's top label
    # The README shows this output: its numbers are what the example prints.
    shown = example_blocks("pets")[3][1]
    assert re.search(r"0\.4390\s+0\s+tabby", shown) and re.search(r"0\.43\d\d\s+0\s+tabby", kitten)


def yolo_stand_in(classes: int = 80, size: int = 640) -> onnx.ModelProto:
    """Ultralytics' export signature: images [1, 3, 640, 640] -> output0 [1, 4 + 80, 64] (random weights)."""
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


def test_the_yolo_and_deeplab_specs_serve_same_signature_files(workdir):
    (_, yolo_spec), (_, deeplab_spec) = example_blocks("yolo")[0], example_blocks("deeplab")[0]
    (workdir / "yolo.toml").write_text(yolo_spec)
    (workdir / "deeplab.toml").write_text(deeplab_spec)
    onnx.save(yolo_stand_in(), str(workdir / "yolov8n.onnx"))
    onnx.save(deeplab_stand_in(), str(workdir / "deeplab.onnx"))
    (workdir / "coco80.txt").write_text("\n".join(f"class{i}" for i in range(80)) + "\n")
    (workdir / "voc21.txt").write_text("\n".join(f"voc{i}" for i in range(21)) + "\n")
    for spec in ("yolo.toml", "deeplab.toml"):
        done = run(f".venv/bin/triton-vision add-model {spec}", workdir)
        assert done.returncode == 0, done.stderr
    photo = workdir / "box.png"
    photo.write_bytes(encode(bright_rectangle_image(480, 640, (100, 80, 300, 240)), ".png"))
    with running_server(workdir / "model_repository") as server:
        url = server.options.grpc_url
        detected = run(
            f".venv/bin/triton-vision detect {photo} --ensemble yolo --format jsonl --url {url} "
            f"--out {workdir / 'out'}",
            workdir,
        )
        segmented = run(
            f".venv/bin/triton-vision segment {photo} --ensemble deeplab --format jsonl --url {url} "
            f"--out {workdir / 'out'}",
            workdir,
        )
    assert detected.returncode == 0, detected.stderr
    assert segmented.returncode == 0, segmented.stderr
    import json

    boxes = json.loads(detected.stdout)["detections"]
    assert all(0 <= x <= 640 and 0 <= y <= 480 for d in boxes for x, y in (d["box"][:2], d["box"][2:]))
    mask = json.loads(segmented.stdout)
    assert (mask["height"], mask["width"]) == (480, 640)  # back at the photo's own size
