"""The yolov5 and yolox formats against references written from YOLOv5's and YOLOX's own post-processing
(tests/support/yolo_family.py), on the tiny detectors' real outputs and on hand-made rows."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest

from tests.support import format_models as fs
from tests.support.format_references import greedy_nms
from tests.support.yolo_family import YOLOX_SIZE, grid_cells, yolov5_detector, yolox_detector
from triton_vision_models import geometry
from triton_vision_models import tensors as t
from triton_vision_models.detection import DetectionPostprocessor, decode_yolov5, decode_yolox
from triton_vision_models.errors import InvalidInputError
from triton_vision_models.model_config import RequestData

IMAGE = fs.blocks_image(64, 96, [(fs.RED, (10, 8, 30, 30)), (fs.BLUE, (50, 20, 90, 60))])


def run(model, pixels: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": pixels[None].astype(np.float32)})[0][0]


def test_yolov5_rows_score_objectness_times_class_and_are_suppressed_class_wise():
    rows = run(yolov5_detector(64, 96), IMAGE.transpose(2, 0, 1) / 255.0)
    found = decode_yolov5(rows, 0.25, 0.45, 100)
    scores = rows[:, 5:] * rows[:, 4:5]
    classes, best = scores.argmax(1), scores.max(1)
    keep = np.flatnonzero(best >= 0.25)
    boxes = np.stack(
        [
            rows[:, 0] - rows[:, 2] / 2,
            rows[:, 1] - rows[:, 3] / 2,
            rows[:, 0] + rows[:, 2] / 2,
            rows[:, 1] + rows[:, 3] / 2,
        ],
        1,
    )
    chosen = keep[greedy_nms(boxes[keep], best[keep], classes[keep], 0.45)]
    np.testing.assert_allclose(found.boxes, boxes[chosen], atol=1e-4)
    np.testing.assert_allclose(found.scores, best[chosen], rtol=1e-6)
    assert found.class_ids.tolist() == classes[chosen].tolist() == [0, 1]
    np.testing.assert_allclose(found.boxes[0], [10, 8, 30, 30], atol=1e-4)  # the red block, in input pixels


def test_yolox_rows_are_decoded_on_the_stride_8_16_32_grids():
    rows = run(yolox_detector(), IMAGE[:, :, ::-1].transpose(2, 0, 1).astype(np.float32))
    found = decode_yolox(rows, YOLOX_SIZE, 0.25, 0.45, 100)
    np.testing.assert_allclose(found.boxes, [[10, 8, 30, 30], [50, 20, 90, 60]], atol=1e-3)
    np.testing.assert_allclose(found.scores, [0.95 * 0.9, 0.9 * 0.9], rtol=1e-6)
    assert found.class_ids.tolist() == [0, 1]


def test_yolox_grid_is_yoloxs_own_order():
    # demo_postprocess: per stride, np.meshgrid(arange(w), arange(h)) stacked (x, y), row-major.
    hand = [(s, x, y) for s in (8, 16, 32) for y in range(YOLOX_SIZE[0] // s) for x in range(YOLOX_SIZE[1] // s)]
    assert grid_cells(*YOLOX_SIZE) == hand
    one = np.zeros((len(hand), 7), np.float32)
    stride, gx, gy = hand[110]
    one[110] = [0.5, 0.25, math.log(2.0), 0.0, 1.0, 0.0, 1.0]
    found = decode_yolox(one, YOLOX_SIZE, 0.5, 0.45, 10)
    cx, cy, w, h = (gx + 0.5) * stride, (gy + 0.25) * stride, 2.0 * stride, 1.0 * stride
    np.testing.assert_allclose(found.boxes, [[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]], rtol=1e-6)


def test_a_yolox_output_of_another_grid_is_refused_naming_both():
    with pytest.raises(InvalidInputError, match=r"64x96 input must be \[126 .*got \[100, 7\]"):
        decode_yolox(np.zeros((100, 7), np.float32), YOLOX_SIZE, 0.5, 0.45, 10)


def test_the_runner_maps_yolox_boxes_back_through_the_top_left_letterbox():
    rule = geometry.ResizeRule(geometry.LETTERBOX, YOLOX_SIZE, pad=geometry.TOP_LEFT)
    runner = DetectionPostprocessor(["red", "blue"], format="yolox", rule=rule, default_score_threshold=0.25)
    rows = run(yolox_detector(), IMAGE[:, :, ::-1].transpose(2, 0, 1).astype(np.float32))
    # An original of 128 x 192 halved into the 64 x 96 input: every coordinate doubles.
    (out,) = runner(
        [
            RequestData(
                {
                    t.RAW_PREDICTIONS: rows[None],
                    t.ORIGINAL_SIZE: np.array([[128, 192]]),
                    t.RESIZED_SIZE: np.array([[64, 96]]),
                },
                {"iou_threshold": 0.5},
            )
        ]
    )
    np.testing.assert_allclose(out[t.BOXES][0], [[20, 16, 60, 60], [100, 40, 180, 120]], atol=1e-2)
    assert out[t.LABELS][0].tolist() == [b"red", b"blue"]
