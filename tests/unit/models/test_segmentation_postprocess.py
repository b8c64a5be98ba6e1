"""Segmentation post-processing against hand-computed answers and OpenCV/NumPy references."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import MODEL_REPOSITORY
from tests.support.modelconfigs import config_for, load_config
from triton_vision_models import geometry
from triton_vision_models import tensors as t
from triton_vision_models.errors import InvalidInputError, InvalidParameterError
from triton_vision_models.model_config import RequestData
from triton_vision_models.segmentation import (
    SegmentationPostprocessor,
    blend,
    class_fractions,
    class_ids,
    nearest_indices,
    pad_masks,
    parse_overlay,
    resize_labels,
    voc_palette,
)


@pytest.fixture(scope="module")
def served() -> SegmentationPostprocessor:
    """The post-processing as the committed config sets it up (520x520 top-left letterbox)."""
    return SegmentationPostprocessor.from_config(config_for(MODEL_REPOSITORY / t.SEGMENTATION_POSTPROCESS))


def on_canvas(served: SegmentationPostprocessor, canvas: int) -> SegmentationPostprocessor:
    """The same post-processing for a small canvas (tests draw logits by hand)."""
    rule = geometry.ResizeRule(geometry.LETTERBOX, (canvas, canvas), pad=geometry.TOP_LEFT)
    return SegmentationPostprocessor([label.decode() for label in served.labels], rule=rule)


def logits_with_region(canvas: int, label: int, rows: slice, cols: slice) -> np.ndarray:
    logits = np.zeros((t.VOC_CLASSES, canvas, canvas), dtype=np.float32)
    logits[0] = 1.0
    logits[label, rows, cols] = 5.0
    return logits


def test_voc_palette_has_the_published_colours():
    palette = voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    known = {
        0: (0, 0, 0),
        1: (128, 0, 0),
        2: (0, 128, 0),
        3: (128, 128, 0),
        8: (64, 0, 0),
        15: (192, 128, 128),
        20: (0, 64, 128),
        255: (224, 224, 192),
    }
    for class_id, rgb in known.items():
        assert tuple(palette[class_id]) == rgb, class_id


def test_class_ids_take_the_argmax_of_the_unpadded_region_only():
    logits = np.zeros((3, 4, 4), dtype=np.float32)
    logits[2, :, :] = 1.0  # class 2 everywhere ...
    logits[1, 0, 1] = 2.0  # ... except one pixel of class 1
    logits[1, 3, 3] = 9.0  # in the padding: must not be read
    got = class_ids(logits, (2, 3))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, [[2, 1, 2], [2, 2, 2]])


def test_nearest_indices_follow_pixel_centres():
    # 5 target pixels over 2 source pixels: centres 0.5..4.5 scaled by 2/5 -> 0.2 0.6 1.0 1.4 1.8
    np.testing.assert_array_equal(nearest_indices(5, 2), [0, 0, 1, 1, 1])
    # 2 target pixels over 5 source pixels: centres 0.5, 1.5 scaled by 5/2 -> 1.25, 3.75
    np.testing.assert_array_equal(nearest_indices(2, 5), [1, 3])
    np.testing.assert_array_equal(nearest_indices(4, 4), [0, 1, 2, 3])


def test_mask_has_original_shape_when_image_is_odd_sized(served):
    canvas = 16
    postprocessor = on_canvas(served, canvas)
    # a 33x23 image letterboxed into 16: resized to 16x11
    logits = logits_with_region(canvas, 15, slice(0, 16), slice(0, 11))
    (out,) = postprocessor(
        [
            RequestData(
                {
                    t.LOGITS: logits[None],
                    t.ORIGINAL_SIZE: np.array([[33, 23]], np.int64),
                    t.RESIZED_SIZE: np.array([[16, 11]], np.int64),
                }
            )
        ]
    )
    assert out[t.MASK].shape == (1, 33, 23)
    np.testing.assert_array_equal(out[t.MASK_SIZE], [[33, 23]])
    assert (out[t.MASK] == 15).all()


def test_region_known_in_logits_lands_at_the_right_original_pixels():
    # Original 20x10 (H x W) letterboxed into a 10x10 canvas: resized 10x5, scale 1/2.
    # Class 3 at working rows 2..4 and columns 1..2 covers original rows 4..9, columns 2..5
    # (original pixel i reads working floor((i + 0.5) / 2)).
    logits = logits_with_region(10, 3, slice(2, 5), slice(1, 3))
    logits[7, 0, 7] = 99.0  # padding (column 7 >= 5): ignored
    mask = resize_labels(class_ids(logits, (10, 5)), (20, 10))
    expected = np.zeros((20, 10), dtype=np.uint8)
    expected[4:10, 2:6] = 3
    np.testing.assert_array_equal(mask, expected)


def test_upscaled_region_lands_at_the_right_original_pixels():
    # Original 3x5 letterboxed into 10: resized 6x10, scale 2. Working rows 2..3, columns 4..7
    # hold class 9: original rows 1 (reads working 3), columns 2..3 (read 5 and 7).
    logits = logits_with_region(10, 9, slice(2, 4), slice(4, 8))
    mask = resize_labels(class_ids(logits, (6, 10)), (3, 5))
    np.testing.assert_array_equal(mask, [[0, 0, 0, 0, 0], [0, 0, 9, 9, 0], [0, 0, 0, 0, 0]])


@pytest.mark.parametrize(
    "source,target", [((7, 5), (517, 389)), ((520, 391), (517, 389)), ((399, 520), (491, 640)), ((300, 400), (31, 17))]
)
def test_resize_labels_equals_pillow_nearest(source, target):
    # Pillow's NEAREST samples at pixel centres too. (OpenCV's INTER_NEAREST_EXACT is off by one
    # at about one row in 500 from fixed-point rounding: 7 -> 517 rows, row 295 reads 3, not 4.)
    labels = np.random.default_rng(0).integers(0, 21, source, dtype=np.uint8)
    got = resize_labels(labels, target)
    want = np.asarray(Image.fromarray(labels).resize((target[1], target[0]), Image.NEAREST))
    np.testing.assert_array_equal(got, want)


def test_class_fractions_count_pixels_per_class():
    mask = np.array([[0, 0, 15, 15], [15, 8, 0, 0]], dtype=np.uint8)
    fractions = class_fractions(mask, 21)
    assert fractions.shape == (21,) and fractions.dtype == np.float32
    assert fractions[0] == pytest.approx(4 / 8) and fractions[15] == pytest.approx(3 / 8)
    assert fractions[8] == pytest.approx(1 / 8) and fractions.sum() == pytest.approx(1.0)


def test_pad_masks_keeps_each_mask_top_left_and_pads_with_void():
    padded = pad_masks([np.full((2, 3), 1, np.uint8), np.full((3, 1), 2, np.uint8)])
    np.testing.assert_array_equal(padded[0], [[1, 1, 1], [1, 1, 1], [255, 255, 255]])
    np.testing.assert_array_equal(padded[1], [[2, 255, 255], [2, 255, 255], [2, 255, 255]])


@pytest.mark.parametrize("raw,want", [(True, True), (False, False), ("true", True), (" FALSE ", False)])
def test_overlay_parameter_accepts_booleans_and_their_strings(raw, want):
    assert parse_overlay({t.OVERLAY_PARAMETER: raw}) is want


def test_overlay_parameter_defaults_to_false():
    assert parse_overlay({}) is False


@pytest.mark.parametrize("raw", [1, 0, "yes", "", None, 1.0])
def test_overlay_parameter_rejects_anything_else(raw):
    with pytest.raises(InvalidParameterError, match="overlay"):
        parse_overlay({t.OVERLAY_PARAMETER: raw})


def test_blend_is_the_rounded_mean_of_image_and_class_colour():
    image = np.array([[[100, 50, 0], [255, 255, 255]]], dtype=np.uint8)
    mask = np.array([[15, 0]], dtype=np.uint8)  # person (192, 128, 128), background (0, 0, 0)
    np.testing.assert_array_equal(blend(image, mask), [[[146, 89, 64], [128, 128, 128]]])


def test_a_batch_of_two_sizes_answers_each_image_at_its_own_size(served):
    canvas = 12
    postprocessor = on_canvas(served, canvas)
    logits = np.stack(
        [
            logits_with_region(canvas, 15, slice(0, 3), slice(0, 12)),
            logits_with_region(canvas, 8, slice(0, 12), slice(0, 2)),
        ]
    )
    (out,) = postprocessor(
        [
            RequestData(
                {
                    t.LOGITS: logits,
                    t.ORIGINAL_SIZE: np.array([[9, 12], [24, 7]], np.int64),
                    t.RESIZED_SIZE: np.array([[9, 12], [12, 4]], np.int64),
                }
            )
        ]
    )
    assert out[t.MASK].shape == (2, 24, 12)
    np.testing.assert_array_equal(out[t.MASK_SIZE], [[9, 12], [24, 7]])
    first, second = out[t.MASK][0], out[t.MASK][1]
    assert (first[:3, :] == 15).all() and (first[3:9, :] == 0).all() and (first[9:, :] == 255).all()
    # second: working columns 0..1 of 4 -> original columns j with (j + 0.5) * 4/7 < 2: 0..2
    assert (second[:, :3] == 8).all() and (second[:, 3:7] == 0).all() and (second[:, 7:] == 255).all()
    assert out[t.CLASS_FRACTIONS][1][8] == pytest.approx(3 / 7)
    assert out[t.LABELS].shape == (2, 21) and out[t.LABELS][0][15] == b"person"
    assert out[t.OVERLAY].tolist() == [[b""], [b""]]


def test_overlay_is_a_png_of_the_original_blended_with_the_mask(served):
    postprocessor = on_canvas(served, 12)
    image = np.zeros((9, 12, 3), dtype=np.uint8)
    image[..., 0] = 200  # RGB (200, 0, 0)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    row = np.concatenate([encoded.ravel(), np.zeros(7, np.uint8)])[None]  # zero padding allowed
    logits = logits_with_region(12, 15, slice(0, 3), slice(0, 12))
    (out,) = postprocessor(
        [
            RequestData(
                {
                    t.LOGITS: logits[None],
                    t.ORIGINAL_SIZE: np.array([[9, 12]], np.int64),
                    t.RESIZED_SIZE: np.array([[9, 12]], np.int64),
                    t.IMAGE: row,
                },
                {t.OVERLAY_PARAMETER: True},
            )
        ]
    )
    overlay = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(out[t.OVERLAY][0][0], np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    assert overlay.shape == (9, 12, 3)
    assert tuple(overlay[0, 0]) == (196, 64, 64)  # ((200 + 192 + 1) // 2, (0 + 128 + 1) // 2, ...)
    assert tuple(overlay[8, 11]) == (100, 0, 0)  # background (0, 0, 0)


def test_sizes_outside_the_canvas_are_refused(served):
    postprocessor = on_canvas(served, 8)
    logits = logits_with_region(8, 1, slice(0, 1), slice(0, 1))
    request = RequestData(
        {
            t.LOGITS: logits[None],
            t.ORIGINAL_SIZE: np.array([[9, 9]], np.int64),
            t.RESIZED_SIZE: np.array([[9, 8]], np.int64),
        }
    )
    with pytest.raises(InvalidInputError, match="out of range"):
        postprocessor([request])


def test_labels_come_from_the_committed_voc_file(served):
    names = [label.decode() for label in served.labels]
    assert len(names) == 21 and names[0] == "background" and names[15] == "person" and names[20] == "tvmonitor"


def test_segmentation_names_agree_with_the_tensors_module():
    ensemble = load_config(MODEL_REPOSITORY / t.SEGMENTATION)
    assert [o.name for o in ensemble.output] == [t.MASK, t.MASK_SIZE, t.CLASS_FRACTIONS, t.LABELS, t.OVERLAY]
    model = load_config(MODEL_REPOSITORY / t.SEGMENTER)
    assert model.platform == "onnxruntime_onnx"
    assert [i.name for i in model.input] == [t.SEGMENTER_INPUT]
    assert [o.name for o in model.output] == [t.SEGMENTER_OUTPUT, t.SEGMENTER_AUX]
    pre = load_config(MODEL_REPOSITORY / t.SEGMENTATION_PREPROCESS)
    assert [o.name for o in pre.output] == [t.PIXELS, t.ORIGINAL_SIZE, t.RESIZED_SIZE]
    assert list(pre.output[0].dims) == [3, t.SEGMENTATION_CANVAS, t.SEGMENTATION_CANVAS]
