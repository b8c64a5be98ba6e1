"""The post-processing of every detection and segmentation format against NumPy references written in
tests/support/format_references.py (never the code under test): the tf-od box conversion, the YOLO decode with a
greedy class-wise NMS, label_offset, NHWC logits and class maps under several resize rules, and the
request parameters each format takes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import format_references as ref
from tests.support import reference
from tests.support.runners import run_request
from triton_vision_models import geometry
from triton_vision_models import tensors as t
from triton_vision_models.classification import ClassificationPostprocessor
from triton_vision_models.detection import DetectionPostprocessor, decode_yolo
from triton_vision_models.errors import InferenceError, InvalidInputError, InvalidParameterError
from triton_vision_models.segmentation import SegmentationPostprocessor

LABELS = ["background", "red", "blue", "green"]
STRETCH = geometry.ResizeRule(geometry.STRETCH, (48, 80))
LETTERBOX = geometry.ResizeRule(geometry.LETTERBOX, (64, 96), pad=geometry.CENTER)


def sizes(original, resized) -> dict[str, np.ndarray]:
    return {
        t.ORIGINAL_SIZE: np.array(original, dtype=np.int64).reshape(-1, 2),
        t.RESIZED_SIZE: np.array(resized, dtype=np.int64).reshape(-1, 2),
    }


# -- tf-od ---------------------------------------------------------------------------------------------
def tfod_inputs(boxes, scores, classes, count) -> dict[str, np.ndarray]:
    """One image's tf-od outputs as the ensemble hands them over: float classes, num_detections [B]."""
    return {
        t.RAW_BOXES: np.array(boxes, np.float32)[None],
        t.RAW_SCORES: np.array(scores, np.float32)[None],
        t.RAW_LABELS: np.array(classes, np.float32)[None],
        t.RAW_COUNT: np.array([count], np.float32),
    }


@pytest.mark.parametrize(
    "rule, original, ref_args",
    [
        (STRETCH, (151, 203), dict(rule="stretch", size=(48, 80))),
        (LETTERBOX, (151, 203), dict(rule="letterbox", size=(64, 96), centre=True)),
        (LETTERBOX, (300, 97), dict(rule="letterbox", size=(64, 96), centre=True)),  # padded left and right
    ],
    ids=["stretch", "letterbox-center-landscape", "letterbox-center-portrait"],
)
def test_tfod_boxes_come_back_in_original_pixels(rule, original, ref_args):
    normalised = [[0.1, 0.2, 0.5, 0.6], [0.3, 0.05, 0.95, 0.4], [0.0, 0.0, 1.0, 1.0]]
    placement = ref.ref_placement(original=original, **ref_args)
    runner = DetectionPostprocessor(LABELS, format="tf-od", label_offset=1, rule=rule)
    inputs = {**tfod_inputs(normalised, [0.9, 0.7, 0.99], [0.0, 1.0, 2.0], 2), **sizes(original, placement.resized)}
    out = run_request(runner, inputs)
    want = ref.ref_original_boxes(ref.ref_tfod_boxes(np.array(normalised[:2]), placement.network), placement)
    assert out[t.COUNT].tolist() == [[2]], "the row beyond num_detections is not a detection"
    np.testing.assert_allclose(out[t.BOXES][0], want, atol=1e-3)
    assert out[t.CLASS_IDS][0].tolist() == [1, 2] and out[t.LABELS][0].tolist() == [b"red", b"blue"]


def test_tfod_count_above_the_rows_is_refused():
    runner = DetectionPostprocessor(LABELS, format="tf-od", label_offset=1, rule=STRETCH)
    inputs = {**tfod_inputs([[0, 0, 1, 1]], [0.9], [0.0], 3), **sizes((10, 10), (48, 80))}
    with pytest.raises(Exception, match="a count of 3 for 1 rows"):
        run_request(runner, inputs)


@pytest.mark.parametrize("offset, want", [(0, [0, 1]), (1, [1, 2]), (2, [2, 3])])
def test_label_offset_moves_model_ids_to_label_lines(offset, want):
    runner = DetectionPostprocessor(LABELS, format="tf-od", label_offset=offset, rule=STRETCH)
    inputs = {**tfod_inputs([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], [0.9, 0.8], [0.0, 1.0], 2), **sizes((9, 9), (48, 80))}
    out = run_request(runner, inputs)
    assert out[t.CLASS_IDS][0].tolist() == want
    assert out[t.LABELS][0].tolist() == [LABELS[i].encode() for i in want]


def test_a_model_id_beyond_the_labels_is_refused():
    runner = DetectionPostprocessor(LABELS, format="tf-od", label_offset=2, rule=STRETCH)
    inputs = {**tfod_inputs([[0, 0, 1, 1]], [0.9], [2.0], 1), **sizes((9, 9), (48, 80))}
    with pytest.raises(InferenceError, match=r"class ids must be in 0..3, got \[4\]"):
        run_request(runner, inputs)


# -- yolo ----------------------------------------------------------------------------------------------
def predictions(boxes_xyxy, class_scores) -> np.ndarray:
    """[4 + C, N] from x1 y1 x2 y2 boxes and [N, C] scores."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    cxcywh = np.stack(
        [
            (boxes[:, 0] + boxes[:, 2]) / 2,
            (boxes[:, 1] + boxes[:, 3]) / 2,
            boxes[:, 2] - boxes[:, 0],
            boxes[:, 3] - boxes[:, 1],
        ],
        axis=1,
    )
    return np.concatenate([cxcywh, np.asarray(class_scores, np.float64)], axis=1).T.astype(np.float32)


def assert_same_detections(got, want) -> None:
    boxes, scores, classes = want
    assert got.class_ids.tolist() == list(classes), (got.class_ids.tolist(), list(classes))
    np.testing.assert_allclose(got.scores, scores, atol=1e-6)
    np.testing.assert_allclose(got.boxes, boxes, atol=1e-4)


def random_predictions(seed: int, count: int = 300, classes: int = 3) -> np.ndarray:
    """Boxes clustered around a few centres (much overlap), scores on a 0.05 grid (many ties)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(20, 200, size=(6, 2))
    pick = centres[rng.integers(0, 6, count)] + rng.normal(0, 6, size=(count, 2))
    size = rng.uniform(10, 60, size=(count, 2))
    boxes = np.concatenate([pick - size / 2, pick + size / 2], axis=1)
    scores = np.round(rng.uniform(0, 1, size=(count, classes)) / 0.05) * 0.05
    return predictions(boxes, scores)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold, iou, max_detections", [(0.25, 0.45, 100), (0.5, 0.3, 10), (0.05, 0.7, 300)])
def test_yolo_decode_equals_a_greedy_classwise_nms(seed, threshold, iou, max_detections):
    raw = random_predictions(seed)
    got = decode_yolo(raw, threshold, iou, max_detections)
    assert_same_detections(got, ref.ref_yolo(raw, threshold, iou, max_detections))


def test_yolo_max_detections_counts_the_boxes_left_after_suppression():
    """Top-N after NMS: the second box is suppressed by the first, so the third is the second detection."""
    raw = predictions([[0, 0, 10, 10], [0, 0, 10, 9], [50, 50, 60, 60]], [[0.9], [0.85], [0.8]])
    got = decode_yolo(raw, 0.25, 0.45, 2)
    assert got.scores.tolist() == pytest.approx([0.9, 0.8])
    assert_same_detections(got, ref.ref_yolo(raw, 0.25, 0.45, 2))


def test_yolo_score_exactly_at_the_threshold_is_kept():
    """As for the other formats, scores at or above the threshold are detections."""
    raw = predictions([[0, 0, 10, 10], [20, 20, 30, 30]], [[0.5], [0.25]])
    got = decode_yolo(raw, 0.5, 0.45, 100)
    assert got.scores.tolist() == [0.5]


def test_yolo_iou_exactly_at_the_threshold_is_not_suppressed():
    """IoU([0, 0, 10, 10], [0, 0, 10, 5]) = 0.5: kept at iou_threshold 0.5, suppressed below it."""
    raw = predictions([[0, 0, 10, 10], [0, 0, 10, 5]], [[0.9], [0.8]])
    assert len(decode_yolo(raw, 0.25, 0.5, 100).scores) == 2
    assert len(decode_yolo(raw, 0.25, 0.499, 100).scores) == 1


def test_yolo_fractional_boxes_are_compared_unrounded():
    """IoU([0, 0, 10.4, 10], [0.6, 0, 10, 10]) = 94 / 104 = 0.904: suppressed at 0.9, kept at 0.91
    (rounded to whole pixels they would be one box, IoU 1)."""
    raw = predictions([[0, 0, 10.4, 10], [0.6, 0, 10, 10]], [[0.9], [0.8]])
    assert len(decode_yolo(raw, 0.25, 0.9, 100).scores) == 1
    assert len(decode_yolo(raw, 0.25, 0.91, 100).scores) == 2


def test_yolo_boxes_of_other_classes_never_suppress_each_other():
    raw = predictions([[0, 0, 10, 10]] * 3, [[0.9, 0.0], [0.0, 0.8], [0.7, 0.0]])
    got = decode_yolo(raw, 0.25, 0.45, 100)
    assert got.class_ids.tolist() == [0, 1] and got.scores.tolist() == pytest.approx([0.9, 0.8])


def test_yolo_boxes_beyond_the_top_left_corner_do_not_suppress_other_classes():
    """A box partly above and left of the image (negative corners, as YOLO predicts near the edge) and a
    box of another class at the far corner: OpenCV's class offset made them overlap."""
    raw = predictions([[600, 600, 650, 650], [-60, -60, 40, 40]], [[0.9, 0.0], [0.0, 0.8]])
    got = decode_yolo(raw, 0.25, 0.1, 100)
    assert got.class_ids.tolist() == [0, 1]
    assert_same_detections(got, ref.ref_yolo(raw, 0.25, 0.1, 100))


def test_yolo_equal_scores_keep_the_model_order():
    raw = predictions([[0, 0, 10, 10], [40, 40, 50, 50], [0, 0, 10, 10], [80, 0, 90, 10]], [[0.6]] * 4)
    got = decode_yolo(raw, 0.25, 0.45, 100)
    np.testing.assert_allclose(got.boxes, [[0, 0, 10, 10], [40, 40, 50, 50], [80, 0, 90, 10]])


def test_yolo_detections_come_back_in_original_pixels_through_a_centred_letterbox():
    original = (151, 203)
    placement = ref.ref_placement("letterbox", original, (64, 96), centre=True)
    boxes = np.array([[10.0, 12.0, 40.0, 30.0], [50.0, 20.0, 95.0, 60.0]])
    runner = DetectionPostprocessor(["a", "b"], format="yolo", rule=LETTERBOX)
    inputs = {
        t.RAW_PREDICTIONS: predictions(boxes, [[0.9, 0.1], [0.2, 0.8]])[None],
        **sizes(original, placement.resized),
    }
    out = run_request(runner, inputs, {"iou_threshold": 0.5})
    np.testing.assert_allclose(out[t.BOXES][0], ref.ref_original_boxes(boxes, placement), atol=1e-3)
    assert out[t.CLASS_IDS][0].tolist() == [0, 1]


# -- request parameters --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["torchvision", "tf-od"])
def test_iou_threshold_is_refused_by_formats_without_nms(fmt):
    runner = DetectionPostprocessor(LABELS, format=fmt, rule=STRETCH)
    with pytest.raises(InvalidParameterError, match="unknown request parameter 'iou_threshold'.*score_threshold"):
        run_request(
            runner, {**tfod_inputs([[0, 0, 1, 1]], [0.9], [0.0], 1), **sizes((9, 9), (48, 80))}, {"iou_threshold": 0.5}
        )


def unknown_parameter_cases():
    yolo = DetectionPostprocessor(["a"], format="yolo", rule=LETTERBOX)
    yolo_inputs = {t.RAW_PREDICTIONS: predictions([[0, 0, 10, 10]], [[0.9]])[None], **sizes((64, 96), (64, 96))}
    segmenter = SegmentationPostprocessor(LABELS, format="class-map", rule=STRETCH)
    segmenter_inputs = {t.CLASS_MAP: np.zeros((1, 48, 80), np.int64), **sizes((9, 9), (48, 80))}
    classifier = ClassificationPostprocessor(LABELS, output="probabilities")
    classifier_inputs = {t.LOGITS: np.full((1, 4), 0.25, np.float32)}
    return [
        (yolo, yolo_inputs, "score_thresh", "score_threshold, max_detections, iou_threshold"),
        (segmenter, segmenter_inputs, "top_k", "overlay"),
        (classifier, classifier_inputs, "overlay", "top_k"),
    ]


@pytest.mark.parametrize("case", range(3), ids=["yolo", "segmentation", "classification"])
def test_unknown_request_parameters_are_refused_naming_the_known(case):
    runner, inputs, parameter, known = unknown_parameter_cases()[case]
    with pytest.raises(InvalidParameterError) as refused:
        run_request(runner, inputs, {parameter: "1"})
    assert str(refused.value) == f"unknown request parameter '{parameter}' (this ensemble takes: {known})"
    run_request(runner, inputs, {"triton_enable_empty_final_response": True, "priority": 1})  # Triton's own


def test_yolo_takes_iou_threshold_in_zero_one():
    runner = DetectionPostprocessor(["a"], format="yolo", rule=LETTERBOX)
    inputs = {t.RAW_PREDICTIONS: predictions([[0, 0, 10, 10]], [[0.9]])[None], **sizes((64, 96), (64, 96))}
    with pytest.raises(InvalidParameterError, match=r"'iou_threshold' must be a number in \[0, 1\], got 1.5"):
        run_request(runner, inputs, {"iou_threshold": 1.5})


# -- segmentation --------------------------------------------------------------------------------------
def random_logits(shape, classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(*shape, classes)).astype(np.float32)


@pytest.mark.parametrize(
    "rule, ref_args, original",
    [
        (
            geometry.ResizeRule(geometry.SHORTER_CROP, (64, 64), shorter=80),
            dict(rule="shorter-crop", size=(64, 64), shorter=80),
            (151, 203),
        ),
        (geometry.ResizeRule(geometry.STRETCH, (64, 64)), dict(rule="stretch", size=(64, 64)), (151, 203)),
        (
            geometry.ResizeRule(geometry.LETTERBOX, (64, 64), pad=geometry.CENTER),
            dict(rule="letterbox", size=(64, 64), centre=True),
            (97, 203),
        ),
    ],
    ids=["shorter-crop", "stretch", "letterbox-center"],
)
def test_nhwc_logits_at_half_resolution_come_back_at_the_original_size(rule, ref_args, original):
    placement = ref.ref_placement(original=original, **ref_args)
    logits = random_logits((32, 32), len(LABELS))  # [h, w, C]: half the 64x64 input
    runner = SegmentationPostprocessor(LABELS, format="logits-nhwc", rule=rule)
    out = run_request(runner, {t.LOGITS: logits[None], **sizes(original, placement.resized)})
    want = ref.ref_mask_fast(logits.argmax(axis=-1), placement)
    assert out[t.MASK].shape == (1, *original)
    np.testing.assert_array_equal(out[t.MASK][0], want)
    if ref_args["rule"] == "shorter-crop":
        assert (want == 255).any() and (want != 255).any()
        np.testing.assert_allclose(out[t.CLASS_FRACTIONS][0].sum(), (want != 255).mean(), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32])
def test_a_class_map_comes_back_at_the_original_size(dtype):
    original = (151, 203)
    rule = geometry.ResizeRule(geometry.LETTERBOX, (48, 64), pad=geometry.CENTER)
    placement = ref.ref_placement("letterbox", original, (48, 64), centre=True)
    classes = np.random.default_rng(1).integers(0, len(LABELS), size=(48, 64))
    runner = SegmentationPostprocessor(LABELS, format="class-map", rule=rule)
    out = run_request(runner, {t.CLASS_MAP: classes.astype(dtype)[None], **sizes(original, placement.resized)})
    np.testing.assert_array_equal(out[t.MASK][0], ref.ref_mask_fast(classes, placement))


def test_a_class_map_with_an_id_beyond_the_labels_is_refused():
    runner = SegmentationPostprocessor(LABELS, format="class-map", rule=STRETCH)
    classes = np.full((1, 48, 80), 4, np.int64)
    with pytest.raises(InferenceError, match=r"class ids must be in 0..3, got 4..4"):
        run_request(runner, {t.CLASS_MAP: classes, **sizes((9, 9), (48, 80))})


def test_keep_aspect_batches_answer_each_image_from_its_own_region_of_the_padded_output():
    """keep-aspect: a batch is padded bottom/right to its largest image, and so is the model's output;
    the smaller image's mask reads only its own top-left region, at the output's resolution."""
    rule = geometry.ResizeRule(geometry.KEEP_ASPECT, min_size=40, max_size=80)
    originals = [(50, 80), (30, 30)]
    placements = [ref.ref_placement("keep-aspect", o, min_size=40, max_size=80) for o in originals]
    assert [p.resized for p in placements] == [(40, 64), (40, 40)]
    padded = (40, 64)
    logits = random_logits(padded, len(LABELS), seed=2).transpose(2, 0, 1)  # NCHW [C, 40, 64]
    second = np.random.default_rng(5).normal(size=logits.shape).astype(np.float32)
    runner = SegmentationPostprocessor(LABELS, format="logits-nchw", rule=rule)
    out = run_request(
        runner,
        {t.LOGITS: np.stack([logits, second]), **sizes(originals, [p.resized for p in placements])},
    )
    for index, (batch_logits, placement) in enumerate(zip([logits, second], placements, strict=True)):
        h, w = placement.resized
        want = ref.ref_mask_fast(batch_logits[:, :h, :w].argmax(axis=0), placement)
        got = out[t.MASK][index][: placement.original[0], : placement.original[1]]
        np.testing.assert_array_equal(got, want, err_msg=f"image {index}")


def test_keep_aspect_refuses_an_output_smaller_than_the_image():
    rule = geometry.ResizeRule(geometry.KEEP_ASPECT, min_size=40, max_size=80)
    runner = SegmentationPostprocessor(LABELS, format="logits-nchw", rule=rule)
    logits = random_logits((20, 32), len(LABELS)).transpose(2, 0, 1)[None]  # a stride-2 head
    with pytest.raises(
        InvalidInputError, match=r"output \[20, 32\] is smaller than the image's resized size \[40, 64\]"
    ):
        run_request(runner, {t.LOGITS: logits, **sizes((50, 80), (40, 64))})


# -- classification ------------------------------------------------------------------------------------
def test_probabilities_are_ranked_as_they_come():
    runner = ClassificationPostprocessor(LABELS, output="probabilities")
    out = run_request(runner, {t.LOGITS: np.array([[0.1, 0.6, 0.05, 0.25]], np.float32)}, {"top_k": 2})
    assert out[t.CLASS_IDS].tolist() == [[1, 3]] and out[t.SCORES].tolist() == [pytest.approx([0.6, 0.25])]


def test_a_model_with_fewer_classes_than_the_default_top_k_answers_them_all():
    runner = ClassificationPostprocessor(LABELS[:3], default_top_k=5)
    logits = np.array([[0.0, 2.0, 1.0]], np.float32)
    out = run_request(runner, {t.LOGITS: logits})
    assert out[t.CLASS_IDS].tolist() == [[1, 2, 0]]
    np.testing.assert_allclose(out[t.SCORES][0], reference.softmax(logits[0])[[1, 2, 0]], rtol=1e-6)
    with pytest.raises(InvalidParameterError, match=r"'top_k' must be an integer in 1..3, got 4"):
        run_request(runner, {t.LOGITS: logits}, {"top_k": 4})
