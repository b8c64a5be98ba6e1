"""Keypoints' post-processing (the detection runner with yolo-pose and torchvision-keypointrcnn): keypoints
mapped back as the rule's definition says, a batch padded like BOXES, names and skeleton per image."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.runners import run_request
from triton_vision_models import geometry
from triton_vision_models import tensors as t
from triton_vision_models.detection import DetectionPostprocessor
from triton_vision_models.errors import ConfigError, InvalidInputError
from triton_vision_models.keypoints import keypoint_spec

LABELS = ["person"]
SPEC = keypoint_spec('["a","b"]', "[[0,1]]", "2,3", "m")


def pose_rows(candidates, dims: int = 3) -> np.ndarray:
    """[1, 4 + 1 + 2 x dims, n]: (x1, y1, x2, y2), score, two keypoints (x, y[, visibility])."""
    rows = []
    for (x1, y1, x2, y2), score, points in candidates:
        rows.append([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, score, *[v for p in points for v in p[:dims]]])
    return np.array(rows, np.float32).T[None]


def test_keypoints_are_mapped_back_through_the_letterbox_and_clipped():
    runner = DetectionPostprocessor(
        LABELS, format="yolo-pose", rule=geometry.ResizeRule("letterbox", (64, 64), pad="center"), keypoint_spec=SPEC
    )
    # original 100 x 200 -> 32 x 64, 16 rows of padding above: x * 200 / 64, (y - 16) * 200 / 64
    candidates = [((10, 20, 40, 40), 0.9, ((16, 24, 0.8), (63, 8, 0.4)))]
    out = run_request(
        runner,
        {
            t.RAW_PREDICTIONS: pose_rows(candidates),
            t.ORIGINAL_SIZE: np.array([[100, 200]]),
            t.RESIZED_SIZE: np.array([[32, 64]]),
        },
    )
    scale = 200 / 64
    np.testing.assert_allclose(
        out[t.KEYPOINTS][0][0], [[16 * scale, 8 * scale, 0.8], [63 * scale, 0.0, 0.4]], rtol=1e-6
    )
    assert out[t.KEYPOINT_NAMES][0].tolist() == [b"a", b"b"] and out[t.SKELETON][0].tolist() == [[0, 1]]


def test_two_values_per_keypoint_are_fully_confident():
    spec = keypoint_spec('["a","b"]', "[]", "2,2", "m")
    runner = DetectionPostprocessor(
        LABELS, format="yolo-pose", rule=geometry.ResizeRule("stretch", (64, 64)), keypoint_spec=spec
    )
    candidates = [((10, 20, 40, 40), 0.9, ((16, 24), (32, 8)))]
    out = run_request(
        runner,
        {
            t.RAW_PREDICTIONS: pose_rows(candidates, 2),
            t.ORIGINAL_SIZE: np.array([[64, 64]]),
            t.RESIZED_SIZE: np.array([[64, 64]]),
        },
    )
    np.testing.assert_allclose(out[t.KEYPOINTS][0][0], [[16, 24, 1], [32, 8, 1]])
    assert out[t.SKELETON].shape == (1, 0, 2)


def test_a_batch_pads_keypoint_rows_like_boxes_and_repeats_the_names():
    runner = DetectionPostprocessor(
        LABELS, format="torchvision-keypointrcnn", rule=geometry.ResizeRule("stretch", (32, 32)), keypoint_spec=SPEC
    )
    boxes = np.array([[[1, 1, 9, 9], [2, 2, 8, 8]], [[3, 3, 30, 30], [0, 0, 1, 1]]], np.float32)
    out = run_request(
        runner,
        {
            t.RAW_BOXES: boxes,
            t.RAW_SCORES: np.array([[0.9, 0.8], [0.7, 0.1]], np.float32),
            t.RAW_LABELS: np.array([[0, 0], [0, 0]], np.int64),
            t.RAW_KEYPOINTS: np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3),
            t.RAW_KEYPOINT_SCORES: np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], np.float32),
            t.ORIGINAL_SIZE: np.array([[64, 64], [32, 32]]),
            t.RESIZED_SIZE: np.array([[32, 32], [32, 32]]),
        },
    )
    assert out[t.KEYPOINTS].shape == (2, 2, 2, 3) and out[t.COUNT].reshape(-1).tolist() == [2, 1]
    np.testing.assert_allclose(out[t.KEYPOINTS][1][0], [[12, 13, 5], [15, 16, 6]])  # x, y as given, the score
    np.testing.assert_allclose(out[t.KEYPOINTS][0][0], [[0, 2, 1], [6, 8, 2]])  # x 2x, y 2x
    assert not out[t.KEYPOINTS][1][1].any()  # padding
    assert out[t.KEYPOINT_NAMES].shape == (2, 2) and out[t.SKELETON].shape == (2, 1, 2)


def test_keypoints_of_another_count_are_refused():
    runner = DetectionPostprocessor(
        LABELS, format="torchvision-keypointrcnn", rule=geometry.ResizeRule("stretch", (32, 32)), keypoint_spec=SPEC
    )
    with pytest.raises(InvalidInputError, match="inconsistent inputs"):
        run_request(
            runner,
            {
                t.RAW_BOXES: np.zeros((1, 1, 4), np.float32),
                t.RAW_SCORES: np.ones((1, 1), np.float32),
                t.RAW_LABELS: np.zeros((1, 1), np.int64),
                t.RAW_KEYPOINTS: np.zeros((1, 1, 3, 3), np.float32),
                t.RAW_KEYPOINT_SCORES: np.zeros((1, 1, 3), np.float32),
                t.ORIGINAL_SIZE: np.array([[32, 32]]),
                t.RESIZED_SIZE: np.array([[32, 32]]),
            },
        )


def test_keypoint_parameters_are_checked():
    with pytest.raises(ConfigError, match="skeleton pair \\[0, 5\\] names a keypoint beyond the 2 keypoints"):
        keypoint_spec('["a","b"]', "[[0,5]]", "", "m")
    with pytest.raises(ConfigError, match="'keypoint_shape' '3,3' must be 2 keypoints"):
        keypoint_spec('["a","b"]', "[]", "3,3", "m")
    with pytest.raises(ConfigError, match="format 'yolo-pose' needs the keypoints' names"):
        DetectionPostprocessor(LABELS, format="yolo-pose")
