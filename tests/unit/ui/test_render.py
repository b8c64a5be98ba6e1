"""What the page gets for each task's answer: the pictures drawn, the legend (pure code)."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

import triton_vision_contract as contract
from triton_vision_client.client import Classification, Detections
from triton_vision_client.segmentation import Segmentation
from triton_vision_ui.render import classification_view, detection_view, mask_rgba, segmentation_view

VOC_PERSON, VOC_CAT = 15, 8
VOC_PERSON_RGB = (192, 128, 128)  # the Pascal VOC colour map's entry 15


def decoded(url: str, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    header, payload = url.split(",", 1)
    assert header.endswith(";base64")
    return cv2.imdecode(np.frombuffer(base64.b64decode(payload), np.uint8), flags)


def test_classification_rows_keep_the_servers_order_and_numbers():
    view = classification_view(Classification((281, 282), (0.6, 0.3), ("tabby", "tiger cat")))
    assert view["labels"] == [
        {"label": "tabby", "class_id": 281, "score": 0.6},
        {"label": "tiger cat", "class_id": 282, "score": 0.3},
    ]


def test_the_drawn_photo_differs_from_the_original_on_the_box_and_not_far_from_it():
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 3)
    encoded = cv2.imencode(".png", photo)[1].tobytes()
    box = (60.0, 120.0, 250.0, 280.0)
    view = detection_view(encoded, Detections((box,), (0.9,), (1,), ("person",)))
    drawn = decoded(view["drawn"], cv2.IMREAD_COLOR).astype(int)
    assert drawn.shape == photo.shape and (view["width"], view["height"]) == (400, 300)
    difference = np.abs(drawn - photo.astype(int)).sum(axis=2)
    x1, y1, x2, y2 = (int(v) for v in box)
    left_edge = difference[y1 + 5 : y2 - 5, x1]
    assert np.median(left_edge) > 60, "the box's left edge is drawn"
    far = difference[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20]  # inside the box, away from lines and tag
    assert np.percentile(far, 99) < 40, "only JPEG noise away from the box"
    assert view["detections"] == [
        {
            "label": "person",
            "class_id": 1,
            "score": 0.9,
            "box": [60.0, 120.0, 250.0, 280.0],
            "colour": view["detections"][0]["colour"],
        }
    ]


def test_an_undecodable_photo_is_a_value_error_not_a_crash():
    with pytest.raises(ValueError, match="cannot decode"):
        detection_view(b"not an image", Detections((), (), (), ()))


def segmentation(mask: np.ndarray) -> Segmentation:
    fractions = tuple(float(np.mean(mask == i)) for i in range(contract.VOC_CLASSES))
    labels = tuple(f"class{i}" for i in range(contract.VOC_CLASSES))
    return Segmentation(mask, fractions, labels, None)


def test_the_mask_picture_colours_each_class_and_leaves_the_background_clear():
    mask = np.zeros((40, 60), np.uint8)
    mask[5:20, 10:30] = VOC_PERSON
    mask[25:35, 40:55] = VOC_CAT
    bgra = mask_rgba(mask)
    assert bgra.shape == (40, 60, 4)
    assert (bgra[..., 3] == 0).sum() == (mask == 0).sum() and (bgra[mask > 0, 3] == 255).all()
    assert tuple(bgra[10, 15, 2::-1]) == VOC_PERSON_RGB  # BGRA -> RGB
    view = segmentation_view(segmentation(mask))
    picture = decoded(view["mask"])
    np.testing.assert_array_equal(picture, bgra)


def test_the_legend_lists_the_classes_present_largest_first_with_their_fractions():
    mask = np.zeros((40, 60), np.uint8)
    mask[5:20, 10:30] = VOC_PERSON  # 300 pixels
    mask[25:35, 40:55] = VOC_CAT  # 150 pixels
    legend = segmentation_view(segmentation(mask))["legend"]
    assert [row["class_id"] for row in legend] == [0, VOC_PERSON, VOC_CAT]
    assert [row["fraction"] for row in legend] == pytest.approx([1 - 450 / 2400, 300 / 2400, 150 / 2400])
    assert legend[1]["colour"] == "#c08080" and legend[1]["drawn"] and not legend[0]["drawn"]


def test_instances_are_filled_on_the_photo_and_rows_count_their_pixels():
    from triton_vision_client.answers import Instances
    from triton_vision_ui.render import instances_view

    photo = np.full((60, 80, 3), 128, np.uint8)
    encoded = cv2.imencode(".png", photo)[1].tobytes()
    instance_map = np.zeros((60, 80), np.uint16)
    instance_map[30:50, 40:70] = 1
    answer = Instances(Detections(((5.0, 5.0, 20.0, 20.0),), (0.9,), (0,), ("cat",)), instance_map)
    view = instances_view(encoded, answer)
    drawn = decoded(view["drawn"], cv2.IMREAD_COLOR).astype(int)
    assert view["detections"][0]["pixels"] == 600
    inside = np.abs(drawn[35:45, 45:65] - 128).sum(axis=2)
    outside = np.abs(drawn[52:58, 72:78] - 128).sum(axis=2)
    assert np.median(inside) > 60 and np.median(outside) < 15


def test_keypoint_rows_say_how_many_keypoints_are_seen():
    from triton_vision_client.answers import Keypoints
    from triton_vision_ui.render import keypoints_view

    encoded = cv2.imencode(".png", np.zeros((60, 80, 3), np.uint8))[1].tobytes()
    points = np.array([[[10, 10, 0.9], [50, 40, 0.8], [70, 5, 0.1]]], np.float32)
    answer = Keypoints(
        Detections(((5.0, 5.0, 60.0, 50.0),), (0.9,), (0,), ("person",)), points, ("a", "b", "c"), ((0, 1),)
    )
    view = keypoints_view(encoded, answer)
    assert (view["detections"][0]["keypoints_seen"], view["detections"][0]["keypoints"]) == (2, 3)
    drawn = decoded(view["drawn"], cv2.IMREAD_COLOR)
    assert drawn[25, 30].any()  # on the limb from (10, 10) to (50, 40)
