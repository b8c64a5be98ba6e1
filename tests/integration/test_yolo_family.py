"""The yolov5 and yolox detection formats, served by the real tritonserver, against the references of
tests/support/yolo_family.py: the same ONNX file run in-process on the library's own preprocessing
(YOLOv5's letterbox, YOLOX's preproc: OpenCV INTER_LINEAR) and decoded by its own rules.

Tolerance: one network-input pixel in original pixels per box edge (the served letterbox rounds the
resized size half up, YOLOX truncates it, and the colour rule's edge may fall a pixel apart after two
resizes); scores are the models' constants (1e-6), classes and order equal.
"""

from __future__ import annotations

import numpy as np
import pytest

import triton_vision_contract as contract
from tests.integration.conftest import running_server
from tests.support import format_models as fs
from tests.support.format_models import write_case
from tests.support.format_references import decode
from tests.support.yolo_family import LABELS, SPECS, yolov5_reference, yolox_reference
from triton_vision_client.client import VisionClient

pytestmark = pytest.mark.integration

IMAGES = {
    "landscape.png": (151, 203, [(fs.RED, (20, 15, 70, 60)), (fs.BLUE, (120, 80, 190, 140))], "PNG"),
    "portrait.jpg": (257, 181, [(fs.RED, (100, 20, 170, 90)), (fs.BLUE, (15, 150, 80, 240))], "JPEG"),
    "wide.png": (90, 300, [(fs.RED, (10, 10, 60, 80)), (fs.BLUE, (200, 5, 290, 50))], "PNG"),
}
REFERENCES = {"v5": yolov5_reference, "yx": yolox_reference}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from triton_vision_authoring.add_model.add_model import add_model

    repository = tmp_path_factory.mktemp("yolo_family_repo")
    specs = tmp_path_factory.mktemp("yolo_family_specs")
    for name, (build, preprocess, postprocess) in SPECS.items():
        add_model(write_case(specs, name, "detection", build(), LABELS, preprocess, postprocess), repository)
    with running_server(repository) as server, VisionClient(server.options.grpc_url, "grpc") as connected:
        yield connected


@pytest.mark.parametrize("name", ["v5", "yx"])
def test_served_detections_match_the_librarys_own_pipeline(client, name):
    build = SPECS[name][0]
    model = build()
    encoded = {image: fs.encode(fs.blocks_image(h, w, blocks), fmt) for image, (h, w, blocks, fmt) in IMAGES.items()}
    served = client.detect(list(encoded.values()), score_threshold=0.25, ensemble=name, batch=2)
    for (image, data), answer in zip(encoded.items(), served, strict=True):
        boxes, scores, classes, pixel = REFERENCES[name](model, decode(data))
        assert list(answer.class_ids) == classes.tolist(), image
        np.testing.assert_allclose(answer.scores, scores, atol=1e-6, err_msg=image)
        np.testing.assert_allclose(np.asarray(answer.boxes), boxes, atol=pixel + 1e-3, err_msg=image)
        h, w, blocks, _ = IMAGES[image]
        truth = np.asarray([box for _, box in blocks], dtype=float)
        np.testing.assert_allclose(np.asarray(answer.boxes), truth, atol=2 * pixel + 1e-3, err_msg=image)


def test_the_iou_threshold_reaches_the_nms(client):
    data = fs.encode(fs.blocks_image(*IMAGES["landscape.png"][:3]), "PNG")
    (kept,) = client.detect([data], score_threshold=0.25, ensemble="v5")
    (loose,) = client._in_order(
        contract.DETECTION, [data], {"score_threshold": 0.25, "iou_threshold": 0.99}, "v5", None, 1
    )
    assert len(loose) == len(kept) + 1  # the grown red box is kept when NMS allows 0.99 overlap
