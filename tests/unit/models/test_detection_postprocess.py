"""Detection post-processing against hand-computed cases (no server, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import MODEL_REPOSITORY, ROOT
from tests.support.modelconfigs import config_for
from triton_vision_models import tensors as t
from triton_vision_models.detection import (
    DetectionPostprocessor,
    label_names,
    map_boxes_to_original,
    parse_max_detections,
    parse_score_threshold,
    select_detections,
)
from triton_vision_models.errors import InferenceError, InvalidInputError, InvalidParameterError
from triton_vision_models.model_config import RequestData

COCO_LABELS = MODEL_REPOSITORY / t.DETECTOR / t.DETECTOR_LABEL_FILE  # the model zoo's: ids 1..80
COCO91_LABELS = ROOT / "examples" / "torchvision_detection" / "coco91.txt"  # torchvision's 91-id numbering
DOG, BOTTLE = 17, 40  # in the model zoo's numbering (torchvision's: 18, 44)


# -- box mapping -----------------------------------------------------------------------------
def test_boxes_map_back_to_original_pixels_when_resized():
    # original 300 x 400 (H x W) resized to 600 x 800: every coordinate halves.
    boxes = np.array([[100.0, 50.0, 300.0, 250.0]], dtype=np.float32)
    got = map_boxes_to_original(boxes, (600, 800), (300, 400))
    np.testing.assert_allclose(got, [[50.0, 25.0, 150.0, 125.0]])


def test_boxes_map_back_with_different_scales_per_axis():
    # floor() makes the two axes' scales differ: 491 x 640 -> 800 x 1042.
    # x: 1042 -> 640 is * 0.614203..., y: 800 -> 491 is * 0.61375.
    boxes = np.array([[521.0, 400.0, 1042.0, 800.0]], dtype=np.float32)
    got = map_boxes_to_original(boxes, (800, 1042), (491, 640))
    np.testing.assert_allclose(got, [[320.0, 245.5, 640.0, 491.0]], atol=1e-3)


def test_boxes_are_not_transposed_for_portrait_images():
    # original 400 x 200 (portrait), resized 800 x 400: x and y both * 0.5, x limited by 200.
    boxes = np.array([[10.0, 700.0, 390.0, 790.0]], dtype=np.float32)
    got = map_boxes_to_original(boxes, (800, 400), (400, 200))
    np.testing.assert_allclose(got, [[5.0, 350.0, 195.0, 395.0]])


def test_boxes_are_clipped_to_the_original_image():
    boxes = np.array([[-6.0, -2.0, 900.0, 700.0], [790.0, 590.0, 810.0, 620.0]], dtype=np.float32)
    got = map_boxes_to_original(boxes, (600, 800), (300, 400))
    np.testing.assert_allclose(got, [[0.0, 0.0, 400.0, 300.0], [395.0, 295.0, 400.0, 300.0]])


def test_no_boxes_map_to_an_empty_float_array():
    got = map_boxes_to_original(np.zeros((0, 4), dtype=np.float32), (600, 800), (300, 400))
    assert got.shape == (0, 4) and got.dtype == np.float32


# -- threshold and top-N ------------------------------------------------------------------------
def test_threshold_keeps_scores_at_or_above_it_best_first():
    scores = np.array([0.3, 0.9, 0.5, 0.49999, 0.7], dtype=np.float32)
    assert select_detections(scores, 0.5, 100).tolist() == [1, 4, 2]


def test_equal_scores_keep_the_detector_order():
    scores = np.array([0.7, 0.9, 0.7, 0.9, 0.3], dtype=np.float32)
    assert select_detections(scores, 0.5, 100).tolist() == [1, 3, 0, 2]
    assert select_detections(scores, 0.5, 3).tolist() == [1, 3, 0]


def test_nothing_above_the_threshold_is_an_empty_selection():
    assert select_detections(np.array([0.1, 0.2], dtype=np.float32), 0.5, 10).tolist() == []
    assert select_detections(np.zeros(0, dtype=np.float32), 0.5, 10).tolist() == []


def test_max_detections_cuts_after_sorting():
    scores = np.array([0.6, 0.8, 0.95, 0.7], dtype=np.float32)
    assert select_detections(scores, 0.0, 2).tolist() == [2, 1]


# -- request parameters ---------------------------------------------------------------------------
def test_parameters_default_when_absent():
    assert parse_score_threshold({}) == 0.5
    assert parse_max_detections({}) == 100


@pytest.mark.parametrize("raw, expected", [(0.25, 0.25), (1, 1.0), (0, 0.0), ("0.75", 0.75)])
def test_score_threshold_accepts_numbers_in_zero_one(raw, expected):
    assert parse_score_threshold({t.SCORE_THRESHOLD: raw}) == expected


@pytest.mark.parametrize("raw", [1.5, -0.1, "abc", True, float("nan"), [0.5]])
def test_score_threshold_rejects_others_naming_parameter_expected_and_actual(raw):
    with pytest.raises(InvalidParameterError) as info:
        parse_score_threshold({t.SCORE_THRESHOLD: raw})
    message = str(info.value)
    assert "'score_threshold'" in message and "[0, 1]" in message
    assert ("boolean" if raw is True else ("list" if isinstance(raw, list) else str(raw))) in message


@pytest.mark.parametrize("raw, expected", [(1, 1), (7, 7), ("12", 12)])
def test_max_detections_accepts_positive_integers(raw, expected):
    assert parse_max_detections({t.MAX_DETECTIONS: raw}) == expected


@pytest.mark.parametrize("raw", [0, -3, "x", 2.5, False])
def test_max_detections_rejects_others_naming_parameter_expected_and_actual(raw):
    with pytest.raises(InvalidParameterError) as info:
        parse_max_detections({t.MAX_DETECTIONS: raw})
    message = str(info.value)
    assert "'max_detections'" in message and ">= 1" in message
    assert ("boolean" if raw is False else ("float" if raw == 2.5 else str(raw))) in message


# -- COCO labels ----------------------------------------------------------------------------------
def test_the_torchvision_label_file_uses_the_91_id_numbering():
    lines = COCO91_LABELS.read_text().splitlines()
    assert len(lines) == 91
    assert lines[0] == "__background__" and lines[1] == "person" and lines[90] == "toothbrush"
    assert lines[12] == "N/A" and lines[13] == "stop sign"  # id 12 is unused in COCO
    assert len([name for name in lines[1:] if name != "N/A"]) == 80


def test_the_built_in_label_file_is_the_80_classes_numbered_from_1_as_the_model_zoo_does():
    lines = COCO_LABELS.read_text().splitlines()
    assert len(lines) == 81 and lines[0] == "__background" and lines[1] == "person" and lines[80] == "toothbrush"
    assert lines[1:] == [name for name in COCO91_LABELS.read_text().splitlines()[1:] if name != "N/A"]


def test_label_names_index_by_class_id_and_refuse_unknown_ids():
    labels = COCO_LABELS.read_text().splitlines()
    assert label_names(np.array([1, DOG, BOTTLE]), labels).tolist() == [b"person", b"dog", b"bottle"]
    with pytest.raises(InferenceError, match="0..80"):
        label_names(np.array([81]), labels)


# -- the runner, as Triton calls it ----------------------------------------------------------------
@pytest.fixture(scope="module")
def postprocessor() -> DetectionPostprocessor:
    return DetectionPostprocessor.from_config(config_for(MODEL_REPOSITORY / t.DETECTION_POSTPROCESS))


def request(boxes, scores, ids, resized, original, *, padded_to: int = 0, **parameters) -> RequestData:
    """One image's detector output: as the model zoo's detector gives it (every row a detection), or
    (``padded_to``) padded with junk rows and a count, as the torchvision export gives it."""
    count = len(scores)
    rows = max(padded_to, count)

    def padded(values, shape, fill):
        return np.concatenate(
            [np.array(values, dtype=np.float64).reshape(shape), np.full((rows - count, *shape[1:]), fill)]
        )

    inputs = {
        t.RAW_BOXES: padded(boxes, (-1, 4), 7.0).astype(np.float32)[None],
        t.RAW_SCORES: padded(scores, (-1,), 0.9).astype(np.float32)[None],  # junk above any threshold
        t.RAW_LABELS: padded(ids, (-1,), 5).astype(np.int64)[None],
        t.ORIGINAL_SIZE: np.array([original], dtype=np.int64),
        t.RESIZED_SIZE: np.array([resized], dtype=np.int64),
    }
    if padded_to:
        inputs[t.RAW_COUNT] = np.array([[count]], dtype=np.int64)
    return RequestData(inputs=inputs, parameters=parameters)


@pytest.mark.parametrize("padded_to", [0, 100], ids=["model-zoo-rows", "torchvision-padded-rows"])
def test_runner_answers_original_pixels_names_and_count(postprocessor, padded_to):
    req = request(
        [[100, 50, 300, 250], [0, 0, 800, 600], [10, 10, 20, 20]],
        [0.95, 0.4, 0.6],
        [1, 3, DOG],
        resized=(600, 800),
        original=(300, 400),
        padded_to=padded_to,
    )
    (out,) = postprocessor([req])
    np.testing.assert_allclose(out[t.BOXES], [[[50, 25, 150, 125], [5, 5, 10, 10]]])
    np.testing.assert_allclose(out[t.SCORES], [[0.95, 0.6]])
    assert out[t.CLASS_IDS].tolist() == [[1, DOG]] and out[t.CLASS_IDS].dtype == np.int32
    assert out[t.LABELS].tolist() == [[b"person", b"dog"]]
    assert out[t.COUNT].tolist() == [[2]] and out[t.COUNT].dtype == np.int32


def test_boxes_in_the_padding_to_32_are_clipped_to_the_image(postprocessor):
    """The network input is padded to multiples of 32 (800 x 1042 -> 800 x 1056): a box reaching into the
    padding comes back clipped to the original image."""
    (out,) = postprocessor([request([[1000, 700, 1056, 800]], [0.9], [1], resized=(800, 1042), original=(491, 640))])
    x1, y1, x2, y2 = out[t.BOXES][0, 0]
    assert x2 == 640 and y2 == 491 and x1 == pytest.approx(1000 * 640 / 1042) and y1 == pytest.approx(700 * 491 / 800)


def test_runner_honours_request_parameters(postprocessor):
    req = request(
        [[0, 0, 8, 8], [0, 0, 4, 4], [0, 0, 2, 2]],
        [0.9, 0.3, 0.2],
        [1, 1, 1],
        (600, 800),
        (300, 400),
        score_threshold=0.25,
        max_detections=1,
    )
    (out,) = postprocessor([req])
    assert out[t.COUNT].tolist() == [[1]]
    np.testing.assert_allclose(out[t.BOXES], [[[0, 0, 4, 4]]])


def test_runner_answers_zero_detections_with_empty_outputs(postprocessor):
    (out,) = postprocessor([request(np.zeros((0, 4)), [], [], (600, 800), (300, 400))])
    assert out[t.BOXES].shape == (1, 0, 4) and out[t.SCORES].shape == (1, 0)
    assert out[t.LABELS].shape == (1, 0) and out[t.COUNT].tolist() == [[0]]


def test_runner_rejects_inconsistent_inputs(postprocessor):
    req = request([[0, 0, 8, 8], [1, 1, 4, 4]], [0.9, 0.8], [1, 1], (600, 800), (300, 400))
    req.inputs[t.RAW_SCORES] = req.inputs[t.RAW_SCORES][:, :1]
    with pytest.raises(InvalidInputError, match="inconsistent"):
        postprocessor([req])
    too_many = request([[0, 0, 8, 8]], [0.9], [1], (600, 800), (300, 400), padded_to=100)
    too_many.inputs[t.RAW_COUNT] = np.array([[101]], dtype=np.int64)
    with pytest.raises(InvalidInputError, match="inconsistent"):
        postprocessor([too_many])


def batch_request(*images: RequestData, **parameters) -> RequestData:
    names = images[0].inputs
    return RequestData(inputs={n: np.concatenate([i.inputs[n] for i in images]) for n in names}, parameters=parameters)


def test_a_batch_answers_per_image_padded_to_the_largest_count(postprocessor):
    # Batches of several images come from the torchvision export (its rows padded to 100, with a count).
    first = request(
        [[100, 50, 300, 250], [10, 10, 20, 20]],
        [0.95, 0.6],
        [1, DOG],
        resized=(600, 800),
        original=(300, 400),
        padded_to=100,
    )
    second = request([[0, 0, 40, 80]], [0.3], [3], resized=(800, 400), original=(400, 200), padded_to=100)
    third = request([[80, 40, 120, 80]], [0.7], [BOTTLE], resized=(800, 800), original=(80, 80), padded_to=100)
    (out,) = postprocessor([batch_request(first, second, third)])
    assert out[t.COUNT].tolist() == [[2], [0], [1]]
    assert out[t.BOXES].shape == (3, 2, 4) and out[t.LABELS].shape == (3, 2)
    np.testing.assert_allclose(out[t.BOXES][0], [[50, 25, 150, 125], [5, 5, 10, 10]])
    np.testing.assert_allclose(out[t.BOXES][2][:1], [[8, 4, 12, 8]])
    assert out[t.CLASS_IDS].tolist() == [[1, DOG], [0, 0], [BOTTLE, 0]]
    assert out[t.LABELS].tolist() == [[b"person", b"dog"], [b"", b""], [b"bottle", b""]]
    np.testing.assert_allclose(out[t.SCORES], [[0.95, 0.6], [0, 0], [0.7, 0]])
    np.testing.assert_array_equal(out[t.BOXES][1], 0)


def test_a_batch_where_no_image_has_detections_answers_empty_rows(postprocessor):
    empty = request(np.zeros((0, 4)), [], [], (600, 800), (300, 400), padded_to=100)
    (out,) = postprocessor([batch_request(empty, empty)])
    assert out[t.BOXES].shape == (2, 0, 4) and out[t.COUNT].tolist() == [[0], [0]]


def test_runner_rejects_a_bad_parameter_per_request(postprocessor):
    req = request([[0, 0, 8, 8]], [0.9], [1], (600, 800), (300, 400), score_threshold="high")
    with pytest.raises(InvalidParameterError, match="score_threshold"):
        postprocessor([req])
