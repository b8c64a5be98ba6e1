"""A pipeline's objects step against hand-computed cases: the real detection and classification
post-processing runners stand in for the models it calls, and a "model" that answers each crop's
mean colour, so which pixels each crop holds is visible in the answer."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from triton_vision_models import geometry
from triton_vision_models import tensors as t
from triton_vision_models.classification import ClassificationPostprocessor
from triton_vision_models.detection import DetectionPostprocessor
from triton_vision_models.errors import InferenceError, InvalidInputError, InvalidParameterError
from triton_vision_models.model_config import RequestData
from triton_vision_models.pipeline import PipelineObjects, Stage, crop_window
from triton_vision_models.preprocessing import PreprocessSpec

LABELS = ["cat", "dog", "car"]
STRETCH_4 = PreprocessSpec(
    geometry.ResizeRule(geometry.STRETCH, (4, 4)), channels="RGB", layout="NHWC", dtype="uint8", fill=0.0
)


def photo() -> tuple[np.ndarray, bytes]:
    """A 60 x 80 RGB photo: red left half, blue right half (PNG, lossless)."""
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[:, :40] = (255, 0, 0)
    rgb[:, 40:] = (0, 0, 255)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return rgb, png.tobytes()


class Server:
    """The models a pipeline calls, by name, and what each was sent."""

    def __init__(self, boxes, scores, labels, *, stage_max_batch: int = 8) -> None:
        rule = geometry.ResizeRule(geometry.STRETCH, (60, 80))  # network input = the photo: boxes stay put
        self.detector = DetectionPostprocessor(LABELS, format="torchvision", rule=rule)
        self.raw: dict[str, np.ndarray] = {
            t.RAW_BOXES: np.array([boxes], np.float32).reshape(1, -1, 4),
            t.RAW_SCORES: np.array([scores], np.float32),
            t.RAW_LABELS: np.array([labels], np.int64),
            t.ORIGINAL_SIZE: np.array([[60, 80]], np.int64),
            t.RESIZED_SIZE: np.array([[60, 80]], np.int64),
        }
        self.classifier = ClassificationPostprocessor(["red", "green", "blue"], output="probabilities")
        self.calls: list[tuple[str, dict, dict]] = []
        self.stage_max_batch = stage_max_batch
        self.fail: dict[str, Exception] = {}

    def infer(self, model, inputs, outputs, parameters):
        self.calls.append((model, dict(inputs), dict(parameters)))
        if model in self.fail:
            raise self.fail[model]
        if model == "det_post":
            return self.detector.run_one(RequestData(inputs, parameters))
        if model == "stage_model":
            pixels = inputs["pixels"]
            assert pixels.shape[0] <= self.stage_max_batch
            means = pixels.reshape(pixels.shape[0], -1, 3).mean(axis=1) / 255.0
            return {"scores": means.astype(np.float32)}
        if model == "stage_post":
            return self.classifier.run_one(RequestData({t.LOGITS: inputs[t.LOGITS]}, parameters))
        raise AssertionError(model)

    def runner(self, **options) -> PipelineObjects:
        stage = Stage(
            name="colours",
            task=t.CLASSIFICATION,
            model="stage_model",
            input="pixels",
            output="scores",
            max_batch=self.stage_max_batch,
            postprocess="stage_post",
            postprocess_input=t.LOGITS,
            postprocess_max_batch=32,
            preprocess=STRETCH_4,
            classes=3,
            default_top_k=2,
        )
        return PipelineObjects(
            self.infer, stage, pipeline="scene", detector="det", detector_postprocess="det_post", **options
        )

    def request(self, parameters=None) -> RequestData:
        _, png = photo()
        return RequestData({t.IMAGE: np.frombuffer(png, np.uint8)[None], **self.raw}, parameters or {})


def test_crop_windows_floor_the_start_ceil_the_end_and_clip():
    assert crop_window((10.2, 5.7, 20.1, 9.0), 0.0, 60, 80) == (5, 9, 10, 21)
    # margin 0.5 of a 10 x 4 box: 5 px and 2 px on each side
    assert crop_window((10.0, 10.0, 20.0, 14.0), 0.5, 60, 80) == (8, 16, 5, 25)
    assert crop_window((-5.0, -5.0, 100.0, 100.0), 0.0, 60, 80) == (0, 60, 0, 80)
    # a box of no width still gives a pixel
    assert crop_window((30.0, 30.0, 30.0, 30.0), 0.0, 60, 80) == (30, 31, 30, 31)


def test_each_object_is_answered_from_its_own_pixels():
    server = Server([[0, 0, 40, 60], [40, 0, 80, 60]], [0.9, 0.8], [0, 1])
    out = server.runner().run_one(server.request())
    assert out[t.COUNT].tolist() == [[2]]
    assert out[t.LABELS].tolist() == [[b"cat", b"dog"]]
    assert out[t.OBJECT_LABELS][0, :, 0].tolist() == [b"red", b"blue"]
    assert out[t.OBJECT_SCORES][0, 0, 0] == pytest.approx(1.0)
    assert out[t.OBJECT_CLASS_IDS].shape == (1, 2, 2)  # top_k: the stage's default, 2
    # one call of the stage's model for both crops
    assert [model for model, _, _ in server.calls].count("stage_model") == 1


def test_a_box_over_both_halves_is_a_mix_and_the_margin_widens_it():
    server = Server([[30, 0, 40, 60]], [0.9], [0])
    plain = server.runner().run_one(server.request())
    assert plain[t.OBJECT_LABELS][0, 0, 0] == b"red"
    wide = server.runner(margin=1.0).run_one(server.request())  # 20..50: two thirds red, one third blue
    assert wide[t.OBJECT_SCORES][0, 0].tolist() == pytest.approx([2 / 3 / (2 / 3 + 1 / 3), 1 / 3], abs=0.02)


def test_classes_and_max_objects_keep_the_highest_scored_of_the_classes():
    server = Server(
        [[0, 0, 10, 10], [10, 0, 20, 10], [20, 0, 30, 10], [30, 0, 40, 10]], [0.9, 0.8, 0.7, 0.6], [2, 0, 1, 0]
    )
    out = server.runner(classes=[0, 1]).run_one(server.request({t.MAX_OBJECTS: 2}))
    assert out[t.LABELS].tolist() == [[b"cat", b"dog"]]
    assert out[t.SCORES][0].tolist() == pytest.approx([0.8, 0.7])
    # with a class filter the detector keeps its own maximum; without, max_objects is its max_detections
    assert t.MAX_DETECTIONS not in server.calls[0][2]
    server.calls.clear()
    server.runner().run_one(server.request({t.MAX_OBJECTS: 3}))
    assert server.calls[0][2][t.MAX_DETECTIONS] == "3"


def test_the_pipelines_threshold_is_the_default_and_the_request_overrides_it():
    server = Server([[0, 0, 10, 10], [10, 0, 20, 10]], [0.9, 0.3], [0, 1])
    assert server.runner(default_score_threshold=0.2).run_one(server.request())[t.COUNT].tolist() == [[2]]
    assert server.runner(default_score_threshold=0.2).run_one(server.request({t.SCORE_THRESHOLD: 0.5}))[
        t.COUNT
    ].tolist() == [[1]]


def test_no_object_answers_empty_outputs_without_calling_the_second_stage():
    server = Server([[0, 0, 10, 10]], [0.1], [0])
    out = server.runner().run_one(server.request({t.TOP_K: 3}))
    assert out[t.COUNT].tolist() == [[0]]
    assert out[t.OBJECT_CLASS_IDS].shape == (1, 0, 3)
    assert out[t.OBJECT_LABELS].shape == (1, 0, 3)
    assert [model for model, _, _ in server.calls] == ["det_post"]


def test_crops_are_split_at_the_second_models_batch_size():
    boxes = [[i, 0, i + 5, 10] for i in range(0, 35, 5)]
    server = Server(boxes, [0.9] * 7, [0] * 7, stage_max_batch=3)
    out = server.runner().run_one(server.request())
    assert out[t.COUNT].tolist() == [[7]]
    sizes = [inputs["pixels"].shape[0] for model, inputs, _ in server.calls if model == "stage_model"]
    assert sizes == [3, 3, 1]


def test_request_parameters_are_checked_and_passed_to_their_stage():
    server = Server([[0, 0, 10, 10]], [0.9], [0])
    with pytest.raises(InvalidParameterError, match="unknown request parameter 'max_detections'"):
        server.runner().run_one(server.request({t.MAX_DETECTIONS: 3}))
    with pytest.raises(InvalidParameterError, match="top_k"):
        server.runner().run_one(server.request({t.TOP_K: 4}))  # 3 classes
    with pytest.raises(InvalidParameterError, match="max_objects"):
        server.runner().run_one(server.request({t.MAX_OBJECTS: 0}))
    out = server.runner().run_one(server.request({t.TOP_K: "1"}))
    assert out[t.OBJECT_LABELS].shape == (1, 1, 1)
    assert [params for model, _, params in server.calls if model == "stage_post"] == [{t.TOP_K: "1"}]


def test_a_failing_stage_fails_the_request_naming_the_stage_and_its_model():
    server = Server([[0, 0, 10, 10]], [0.9], [0])
    server.fail["stage_model"] = InferenceError("in ensemble: model is not ready")
    with pytest.raises(InferenceError, match=r"pipeline 'scene', stage 'then: colours' \(stage_model\): .*not ready"):
        server.runner().run_one(server.request())
    server.fail = {"det_post": InvalidInputError("bad thing")}
    with pytest.raises(InvalidInputError, match=r"stage 'detect: det' \(det_post\): bad thing"):
        server.runner().run_one(server.request())


def test_a_stage_that_cannot_answer_per_object_is_refused():
    with pytest.raises(Exception, match="cannot be a second stage"):
        PipelineObjects(
            lambda *a: {},
            Stage("seg", t.SEGMENTATION, "m", "i", "o", 1, "p", "l", 1, STRETCH_4),
            pipeline="p",
            detector="d",
            detector_postprocess="dp",
        )


def test_the_preprocessing_rule_survives_its_trip_through_a_config_parameter():
    import json

    rule = PreprocessSpec(
        geometry.ResizeRule(geometry.SHORTER_CROP, (224, 224), shorter=256), mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.2)
    )
    assert PreprocessSpec.from_json(json.loads(json.dumps(rule.to_json()))) == rule
    assert math.isclose(PreprocessSpec.from_json(rule.to_json()).mean[1], 0.5)


def test_an_embedders_vectors_come_back_per_object():
    server = Server([[0, 0, 40, 60], [40, 0, 80, 60]], [0.9, 0.8], [0, 1])
    stage = Stage(
        name="vectors",
        task=t.EMBEDDING,
        model="stage_model",
        input="pixels",
        output="scores",
        max_batch=8,
        postprocess="embed_post",
        postprocess_input=t.RAW_EMBEDDING,
        postprocess_max_batch=32,
        preprocess=STRETCH_4,
    )

    def infer(model, inputs, outputs, parameters):
        if model == "embed_post":
            assert parameters == {}  # no top_k for an embedder
            raw = inputs[t.RAW_EMBEDDING]
            return {t.EMBEDDING_OUTPUT: raw / np.linalg.norm(raw, axis=1, keepdims=True)}
        return server.infer(model, inputs, outputs, parameters)

    runner = PipelineObjects(
        infer, stage, pipeline="scene", detector="det", detector_postprocess="det_post", embedding_dims=3
    )
    out = runner.run_one(server.request())
    np.testing.assert_allclose(out[t.OBJECT_EMBEDDINGS][0], [[1, 0, 0], [0, 0, 1]], atol=1e-6)
    with pytest.raises(InvalidParameterError, match="unknown request parameter 'top_k'"):
        runner.run_one(server.request({t.TOP_K: 1}))
    assert runner.run_one(server.request({t.SCORE_THRESHOLD: 0.99}))[t.OBJECT_EMBEDDINGS].shape == (1, 0, 3)
