"""The real Ultralytics YOLOv8n-seg (int8 ONNX, ../shared) added by add-model and served by the real
tritonserver, against Ultralytics' documented rules run in-process (tests/support/ultralytics_reference.py:
OpenCV INTER_LINEAR letterbox, ONNX Runtime, NMS, process_mask, scale_image) on real photos.

A graph with torchvision's Mask R-CNN export signature (unbatched: add-model adds the batch dimension) is
served beside it, against its masks resized as the rule says (OpenCV INTER_LINEAR to the original size: each
pixel centre sampled bilinearly) and thresholded at 0.5.

The same file is also added with no spec at all (`add-model MODEL.onnx`: the spec from its Ultralytics
metadata) and asked through the `triton-vision instances` command.

Targets: every reference detection scoring >= 0.5 answered with the same class at box IoU >= 0.7, and its
instance (the pixels it owns in INSTANCE_MAP, the reference painted by the same rule) at IoU >= 0.85.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import triton_vision_contract as contract
from tests.conftest import ROOT, shared_path
from tests.integration.conftest import running_server
from tests.support import format_models as fs
from tests.support import instance_models as im
from tests.support import reference
from tests.support import ultralytics_reference as ultra
from tests.support.cli import cli, jsonl
from tests.support.detection import encode
from triton_vision_client.answers import split_instances
from triton_vision_client.client import ClientError, VisionClient

pytestmark = pytest.mark.integration

OUTPUTS = contract.TASK_OUTPUTS[contract.INSTANCE_SEGMENTATION]
SPEC = """name = "yolo_seg"
task = "instance-segmentation"
model = "{model}"
labels = "coco80.txt"

[preprocess]
resize = "letterbox"
size = [320, 320]
fill = 114
antialias = false

[postprocess]
format = "yolo-seg"
score_threshold = 0.25
"""


@pytest.fixture(scope="module")
def seg_model() -> Path:
    return shared_path("models/yolov8n-seg_int8_320.onnx")


@pytest.fixture(scope="module")
def added(tmp_path_factory, seg_model):
    """A repository with 'yolo_seg' (the spec above) and 'described' (add-model on the file alone, the CLI's
    output kept)."""
    from triton_vision_authoring.add_model.add_model import add_model

    work = tmp_path_factory.mktemp("instances")
    shutil.copy(ROOT / "examples" / "yolo" / "coco80.txt", work / "coco80.txt")
    (work / "yolo_seg.toml").write_text(SPEC.format(model=seg_model))
    repository = work / "repository"
    repository.mkdir()
    add_model(work / "yolo_seg.toml", repository)
    maskrcnn = fs.write_case(
        work,
        "tvmask",
        "instance-segmentation",
        im.maskrcnn_model(),
        ("background", "cat", "dog"),
        {"resize": "stretch", "size": [48, 64]},
        {"format": "torchvision-maskrcnn"},
    )
    add_model(maskrcnn, repository)
    described = cli("add-model", str(seg_model), "--name", "described", "--model-repository", str(repository))
    assert described.returncode == 0, described.stderr
    return repository, described.stdout


@pytest.fixture(scope="module")
def server(added):
    with running_server(added[0]) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with VisionClient(server.options.grpc_url, "grpc") as connected:
        yield connected


def photos() -> dict[str, bytes]:
    from skimage import data

    found = {f"{name}.jpg": shared_path(f"images/{name}.jpg").read_bytes() for name in ("kitten", "dog", "persons")}
    found.update({f"{name}.png": encode(getattr(data, name)(), ".png") for name in ("astronaut", "coffee", "chelsea")})
    return found


def test_instances_match_ultralytics_rules_on_real_photos(client, seg_model):
    labels = (ROOT / "examples" / "yolo" / "coco80.txt").read_text().splitlines()
    judged, box_ious, mask_ious = 0, [], []
    for name, data in photos().items():
        rgb = reference.decode_rgb(data)
        want = ultra.segment(seg_model, rgb)
        (got,) = split_instances(client.infer("yolo_seg", [data], OUTPUTS))
        assert got.instance_map.shape == rgb.shape[:2], name
        assert got.instance_map.max() <= len(got)
        want_map = ultra.paint(want.masks, rgb.shape[:2])
        for j in np.flatnonzero(want.scores >= 0.5):
            label = labels[want.class_ids[j]]
            same = [k for k in range(len(got)) if got.detections.class_ids[k] == want.class_ids[j]]
            assert same, f"{name}: {label} {want.scores[j]:.2f} not answered"
            k = max(same, key=lambda k: ultra.box_iou(np.array(got.detections.boxes[k]), want.boxes[j]))
            box_ious.append(ultra.box_iou(np.array(got.detections.boxes[k]), want.boxes[j]))
            mask_ious.append(ultra.mask_iou(got.mask(k), want_map == j + 1))
            assert box_ious[-1] >= 0.7, f"{name}: {label} box IoU {box_ious[-1]:.3f}"
            assert mask_ious[-1] >= 0.85, f"{name}: {label} instance IoU {mask_ious[-1]:.3f}"
            judged += 1
    print(
        f"{judged} instances: box IoU min {min(box_ious):.3f}, mask IoU min {min(mask_ious):.3f} "
        f"median {float(np.median(mask_ious)):.3f}"
    )
    assert judged >= 9


def test_a_bad_request_parameter_is_refused_naming_it(client):
    data = shared_path("images/kitten.jpg").read_bytes()
    with pytest.raises(ClientError, match="iou_threshold"):
        client.infer("yolo_seg", [data], OUTPUTS, {"iou_threshold": 2.0})


def test_add_model_on_the_file_alone_prints_the_spec_it_wrote_from_the_metadata(added):
    repository, printed = added
    kept = (repository / "described" / "spec.toml").read_text()
    assert 'task = "instance-segmentation"' in kept and 'format = "yolo-seg"' in kept and "size = [320, 320]" in kept
    assert "antialias = false" in kept and "fill = 114" in kept
    assert all(line.strip() in printed for line in kept.splitlines() if line.strip())
    labels = (repository / "described_model" / "described.labels.txt").read_text().splitlines()
    assert labels == (ROOT / "examples" / "yolo" / "coco80.txt").read_text().splitlines()


def test_the_instances_command_prints_records_polygons_and_draws(server, seg_model, tmp_path):
    kitten, persons = shared_path("images/kitten.jpg"), shared_path("images/persons.jpg")
    url = server.options.grpc_url
    text = cli("instances", str(kitten), "--ensemble", "described", "--url", url, "--out", str(tmp_path))
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == f"{kitten}: 1 instance"
    assert " cat " in text.stdout.splitlines()[1] and (tmp_path / "kitten.instances.jpg").is_file()
    records = cli("instances", str(persons), "--ensemble", "described", "--url", url, "--format", "jsonl")
    assert records.returncode == 0, records.stderr
    (record,) = jsonl(records.stdout).values()
    want = ultra.segment(seg_model, reference.decode_rgb(persons.read_bytes()), iou=0.7)
    assert [d["label"] for d in record["detections"]] == ["person"] * 4 + [d["label"] for d in record["detections"][4:]]
    assert len(record["detections"]) == len(want.scores)
    for detection in record["detections"]:
        assert detection["pixels"] > 0 and detection["polygons"]
        x1, y1, x2, y2 = detection["box"]
        points = np.array([p for polygon in detection["polygons"] for p in polygon])
        assert points[:, 0].min() >= x1 - 1 and points[:, 0].max() <= x2 + 1
        assert points[:, 1].min() >= y1 - 1 and points[:, 1].max() <= y2 + 1


def test_maskrcnn_masks_are_the_probabilities_above_one_half_at_the_original_size(client):
    import cv2

    for name, data in photos().items():
        rgb = reference.decode_rgb(data)
        h, w = rgb.shape[:2]
        (got,) = split_instances(client.infer("tvmask", [data], OUTPUTS))
        assert list(got.detections.scores) == pytest.approx(im.MASKRCNN_SCORES)
        scale = np.array([w / 64, h / 48] * 2)
        np.testing.assert_allclose(got.detections.boxes, np.array(im.MASKRCNN_BOXES) * scale, rtol=1e-5)
        masks = [cv2.resize(m[0], (w, h), interpolation=cv2.INTER_LINEAR) > 0.5 for m in im.maskrcnn_masks()]
        want = ultra.paint(np.array(masks), (h, w))
        for k in range(3):
            assert ultra.mask_iou(got.mask(k), want == k + 1) >= 0.99, f"{name}: instance {k}"
        assert np.mean(got.instance_map == want) >= 0.999, name


def test_the_playground_draws_the_instances(server):
    from triton_vision_ui.playground import Playground

    playground = Playground(server.options.grpc_url, "grpc")
    try:
        answer = playground.answer(
            "described", shared_path("images/kitten.jpg").read_bytes(), {"score_threshold": "0.5"}
        )
    finally:
        playground.close()
    assert answer["task"] == contract.INSTANCE_SEGMENTATION and answer["parameters"] == {"score_threshold": 0.5}
    assert [row["label"] for row in answer["detections"]] == ["cat"] and answer["detections"][0]["pixels"] > 100000
    assert answer["drawn"].startswith("data:image/jpeg;base64,")
