"""Keypoint ensembles made by add-model from graphs with the published tensor contracts (Ultralytics' pose
head, torchvision's Keypoint R-CNN outputs: tests/support/instance_models.py), served by the real
tritonserver on real photos, against references written from the libraries' documented rules: Ultralytics'
LetterBox, NMS and ``scale_coords`` (keypoints (x - pad) / gain, clipped); torchvision's keypoints in the
network input's pixels, here stretched back.

Target: every reference detection >= 0.5 answered (same class, box IoU >= 0.7), and each of its keypoints with
confidence >= 0.5 within max(3 px, 2% of the box's diagonal).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import triton_vision_contract as contract
from tests.conftest import shared_path
from tests.integration.conftest import running_server
from tests.support import format_models as fs
from tests.support import instance_models as im
from tests.support import reference
from tests.support import ultralytics_reference as ultra
from tests.support.cli import cli, jsonl
from triton_vision_client.answers import split_detections
from triton_vision_client.client import VisionClient

pytestmark = pytest.mark.integration

OUTPUTS = contract.TASK_OUTPUTS[contract.KEYPOINT_TASK]
NAMES = ["head", "hand", "foot"]
SKELETON = [[0, 1], [1, 2]]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from triton_vision_authoring.add_model.add_model import add_model

    work = tmp_path_factory.mktemp("keypoints")
    pose = fs.write_case(
        work,
        "pose",
        "keypoints",
        im.yolo_pose_model(),
        ("person", "robot"),
        {"resize": "letterbox", "size": [64, 64], "fill": 114, "antialias": False},
        {
            "format": "yolo-pose",
            "score_threshold": 0.25,
            "keypoint_shape": [3, 3],
            "keypoint_names": NAMES,
            "skeleton": SKELETON,
        },
    )
    rcnn = fs.write_case(
        work,
        "rcnn",
        "keypoints",
        im.keypointrcnn_model(),
        ("background", "person"),
        {"resize": "stretch", "size": [48, 64]},
        {"format": "torchvision-keypointrcnn", "keypoint_names": ["left", "right"], "skeleton": [[0, 1]]},
    )
    repository = work / "repository"
    repository.mkdir()
    for spec in (pose, rcnn):
        add_model(spec, repository)
    with running_server(repository) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with VisionClient(server.options.grpc_url, "grpc") as connected:
        yield connected


def photos() -> dict[str, bytes]:
    return {name: shared_path(f"images/{name}").read_bytes() for name in ("kitten.jpg", "dog.jpg", "persons.jpg")}


def pose_reference(rgb: np.ndarray):
    """Ultralytics' rules on the pose graph: LetterBox, ORT, NMS (conf 0.25, iou 0.45), scale_coords."""
    import onnxruntime as ort

    lb = ultra.letterbox(rgb, 64)
    session = ort.InferenceSession(im.yolo_pose_model().SerializeToString(), providers=["CPUExecutionProvider"])
    (output0,) = session.run(None, {"images": lb.pixels})
    boxes, scores, ids, rest = ultra.nms(output0[0], 2, 0.25, 0.45)
    points = rest.reshape(-1, 3, 3).copy()
    left, top = lb.pad
    points[:, :, 0] = ((points[:, :, 0] - left) / lb.gain).clip(0, rgb.shape[1])
    points[:, :, 1] = ((points[:, :, 1] - top) / lb.gain).clip(0, rgb.shape[0])
    return ultra.scale_boxes(boxes, lb), scores, ids, points


def rcnn_reference(rgb: np.ndarray):
    """torchvision's outputs above the default 0.5, x and y from the 64 x 48 input back to the image."""
    h, w = rgb.shape[:2]
    rows = [r for r in im.KEYPOINTRCNN_ROWS if r[2] >= 0.5]
    sx, sy = w / 64, h / 48
    boxes = np.array([[x1 * sx, y1 * sy, x2 * sx, y2 * sy] for (x1, y1, x2, y2), *_ in rows])
    points = np.array([[[x * sx, y * sy, c] for (x, y), c in zip(r[3], r[4], strict=True)] for r in rows])
    return boxes, np.array([r[2] for r in rows]), np.array([r[1] for r in rows]), points


def assert_keypoints_match(name: str, got, want) -> int:
    """The issue's target; the number of keypoints judged."""
    (found,) = split_detections(got)
    boxes, scores, ids, points = want
    count = int(got[contract.COUNT][0, 0])
    answered = got[contract.KEYPOINTS][0][:count]
    judged = 0
    for j in np.flatnonzero(scores >= 0.5):
        same = [k for k in range(count) if found.class_ids[k] == ids[j]]
        assert same, f"{name}: detection {j} not answered"
        k = max(same, key=lambda k: ultra.box_iou(np.array(found.boxes[k]), boxes[j]))
        assert ultra.box_iou(np.array(found.boxes[k]), boxes[j]) >= 0.7, name
        x1, y1, x2, y2 = boxes[j]
        tolerance = max(3.0, 0.02 * math.hypot(x2 - x1, y2 - y1))
        for point, answer in zip(points[j], answered[k], strict=True):
            if point[2] < 0.5:
                continue
            assert math.dist(point[:2], answer[:2]) <= tolerance, f"{name}: {answer} vs {point}"
            assert answer[2] == pytest.approx(point[2], abs=1e-6)
            judged += 1
    return judged


def test_yolo_pose_keypoints_match_ultralytics_rules(client):
    judged = 0
    for name, data in photos().items():
        rgb = reference.decode_rgb(data)
        got = client.infer("pose", [data], OUTPUTS)
        judged += assert_keypoints_match(name, got, pose_reference(rgb))
        assert [n.decode() for n in got[contract.KEYPOINT_NAMES][0]] == NAMES
        assert got[contract.SKELETON][0].tolist() == SKELETON
        assert got[contract.KEYPOINTS].shape[1:] == (int(got[contract.COUNT][0, 0]), 3, 3)
    assert judged == 3 * 4  # per photo: two detections, the first with 2 keypoints >= 0.5, the other 2


def test_keypointrcnn_keypoints_back_in_original_pixels(client):
    judged = 0
    for name, data in photos().items():
        got = client.infer("rcnn", [data], OUTPUTS)
        judged += assert_keypoints_match(name, got, rcnn_reference(reference.decode_rgb(data)))
        assert [n.decode() for n in got[contract.KEYPOINT_NAMES][0]] == ["left", "right"]
    assert judged == 3 * 2  # per photo: 3.5 and 7.0 (0.2 and -1.0 are below 0.5: not judged)


def test_the_keypoints_command_prints_records_and_draws_skeletons(server, tmp_path):
    kitten = shared_path("images/kitten.jpg")
    url = server.options.grpc_url
    text = cli("keypoints", str(kitten), "--ensemble", "pose", "--url", url, "--out", str(tmp_path))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"{kitten}: 2 detections" and lines[1].endswith("2/3 keypoints")
    assert [line.split()[0] for line in lines[2:4]] == ["head", "foot"]
    assert (tmp_path / "kitten.keypoints.jpg").is_file()
    records = cli("keypoints", str(kitten), "--ensemble", "rcnn", "--url", url, "--format", "jsonl")
    assert records.returncode == 0, records.stderr
    (record,) = jsonl(records.stdout).values()
    assert record["keypoint_names"] == ["left", "right"] and record["skeleton"] == [[0, 1]]
    want = rcnn_reference(reference.decode_rgb(kitten.read_bytes()))[3]
    got = np.array([d["keypoints"] for d in record["detections"]])
    np.testing.assert_allclose(got, want, atol=0.01)
