"""A pipeline's objects step: the detector's post-processing, then a second ensemble on every object
(pure NumPy/OpenCV; the models it calls are reached through an injected ``infer``).

A pipeline ensemble runs its detector's image part (guard, preprocessing, model: the response-cached
``DET_infer``) as an ordinary step, then this model, which gets the request's encoded image and the
detector's raw outputs and:

1. runs the detector's own post-processing (``DET_postprocess``) with the pipeline's request
   parameters (``score_threshold``, and those the detector takes itself such as ``iou_threshold``);
2. keeps the objects of the pipeline's classes, at most ``max_objects`` per image, highest scores first;
3. decodes each image that has objects once, cuts every object out of it (pixels
   ``[floor(x1), ceil(x2)) x [floor(y1), ceil(y2))`` of the box widened by ``margin`` of its width and
   height on each side, clipped to the image) and preprocesses each crop by the second ensemble's own
   rule (:mod:`.preprocessing`: its resize, colour order, layout and normalisation);
4. runs the second ensemble's model on all crops of the request at once (split at its
   max_batch_size), then its post-processing (a classifier's ``top_k`` passes through), and answers
   the detections with each object's answer under its per-object name (``OBJECT_*``: a classifier's
   top-k, an embedder's vector).

Config parameters (``triton-vision add-model`` writes them from the pipeline spec): ``pipeline``,
``detector`` (names, for messages), ``detector_postprocess`` (a model), ``detector_parameters``
(the request parameters it takes), ``classes`` (JSON list of class ids kept; empty: all),
``default_score_threshold``, ``default_max_objects``, ``margin``, ``stage`` (a name),
``stage_model``, ``stage_input``, ``stage_output``, ``stage_max_batch``, ``stage_postprocess``,
``stage_postprocess_input``, ``stage_postprocess_max_batch``, ``stage_task``, ``stage_classes``,
``stage_default_top_k``, ``stage_preprocess`` (JSON: :class:`.preprocessing.PreprocessSpec`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import tensors as t
from .classification import parse_top_k
from .detection import pad_rows, parse_score_threshold
from .errors import ConfigError, ImageRejectedError, InferenceError, InvalidInputError
from .model_config import ModelConfig, RequestData
from .parameters import int_parameter, refuse_unknown
from .preprocessing import PreprocessSpec, batch, decode, network_input_of

# infer(model, inputs, requested outputs, request parameters) -> outputs: one call of another model
# of the server (Triton's BLS in the server; anything in tests). It raises InvalidInputError when the
# model refused the request as invalid, another TritonVisionError when it failed.
Infer = Callable[[str, Mapping[str, np.ndarray], Sequence[str], Mapping[str, str]], dict[str, np.ndarray]]

DETECTION_OUTPUTS = (t.BOXES, t.SCORES, t.CLASS_IDS, t.LABELS, t.COUNT)
STAGE_OUTPUTS = t.OBJECT_OUTPUTS  # the second stage's outputs, renamed, by its task
STAGE_PARAMETERS = {t.CLASSIFICATION: (t.TOP_K,), t.EMBEDDING: ()}  # request parameters the second stage takes


def crop_window(box: Sequence[float], margin: float, height: int, width: int) -> tuple[int, int, int, int]:
    """The pixels ``[y0, y1) x [x0, x1)`` of ``box`` (x1, y1, x2, y2 in the image's pixels) widened by
    ``margin`` of its width and height on each side: floor of the start, ceil of the end, clipped to
    the image, at least one pixel."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    left = min(max(math.floor(x1 - dx), 0), width - 1)
    top = min(max(math.floor(y1 - dy), 0), height - 1)
    right = max(min(math.ceil(x2 + dx), width), left + 1)
    bottom = max(min(math.ceil(y2 + dy), height), top + 1)
    return top, bottom, left, right


@dataclass(frozen=True)
class Stage:
    """The second ensemble, as the objects step calls it."""

    name: str  # the second ensemble (for messages)
    task: str
    model: str
    input: str
    output: str
    max_batch: int
    postprocess: str
    postprocess_input: str
    postprocess_max_batch: int
    preprocess: PreprocessSpec
    classes: int = 0  # a classifier's class count
    default_top_k: int = t.DEFAULT_TOP_K


class PipelineObjects:
    """Runner: a request's images and its detector's raw outputs -> detections with each object's answer."""

    def __init__(
        self,
        infer: Infer,
        stage: Stage,
        *,
        pipeline: str,
        detector: str,
        detector_postprocess: str,
        detector_parameters: Sequence[str] = (t.SCORE_THRESHOLD, t.MAX_DETECTIONS),
        classes: Sequence[int] | None = None,
        default_score_threshold: float = t.DEFAULT_SCORE_THRESHOLD,
        default_max_objects: int = t.DEFAULT_MAX_DETECTIONS,
        margin: float = 0.0,
        embedding_dims: int = 0,
    ) -> None:
        if stage.task not in STAGE_OUTPUTS:
            raise ConfigError(
                f"pipeline '{pipeline}': a '{stage.task}' ensemble cannot be a second stage "
                f"(one of {', '.join(STAGE_OUTPUTS)})"
            )
        self.infer = infer
        self.stage = stage
        self.pipeline = pipeline
        self.detector = detector
        self.detector_postprocess = detector_postprocess
        # The detector's own parameters pass through; max_detections is the pipeline's max_objects.
        self.passed_through = tuple(p for p in detector_parameters if p not in (t.SCORE_THRESHOLD, t.MAX_DETECTIONS))
        self.classes = None if classes is None else np.array(sorted(set(classes)), dtype=np.int64)
        self.default_score_threshold = default_score_threshold
        self.default_max_objects = default_max_objects
        self.margin = margin
        self.embedding_dims = embedding_dims
        self.parameters = (
            t.SCORE_THRESHOLD,
            t.MAX_OBJECTS,
            *STAGE_PARAMETERS.get(stage.task, ()),
            *self.passed_through,
        )

    @classmethod
    def loader(cls, infer: Infer) -> Callable[[ModelConfig], PipelineObjects]:
        """``from_config`` with the server's ``infer`` (the generated model.py passes Triton's BLS)."""
        return lambda config: cls.from_config(config, infer)

    @classmethod
    def from_config(cls, config: ModelConfig, infer: Infer) -> PipelineObjects:
        try:
            classes = json.loads(config.setting("classes", "null"))
            stage = Stage(
                name=config.setting("stage", "?"),
                task=config.setting("stage_task", t.CLASSIFICATION),
                model=_required(config, "stage_model"),
                input=_required(config, "stage_input"),
                output=_required(config, "stage_output"),
                max_batch=max(1, config.int_setting("stage_max_batch", 1)),
                postprocess=_required(config, "stage_postprocess"),
                postprocess_input=config.setting("stage_postprocess_input", t.LOGITS),
                postprocess_max_batch=max(1, config.int_setting("stage_postprocess_max_batch", 1)),
                preprocess=PreprocessSpec.from_json(json.loads(_required(config, "stage_preprocess"))),
                classes=config.int_setting("stage_classes", 0),
                default_top_k=config.int_setting("stage_default_top_k", t.DEFAULT_TOP_K),
            )
            embedding = [o for o in config.outputs if o.name == t.OBJECT_EMBEDDINGS and o.dims and o.dims[-1] > 0]
            return cls(
                infer,
                stage,
                pipeline=config.setting("pipeline", config.name),
                detector=config.setting("detector", "?"),
                detector_postprocess=_required(config, "detector_postprocess"),
                detector_parameters=tuple(p for p in config.setting("detector_parameters", "").split(",") if p),
                classes=classes if classes else None,
                default_score_threshold=config.float_setting("default_score_threshold", t.DEFAULT_SCORE_THRESHOLD),
                default_max_objects=config.int_setting("default_max_objects", t.DEFAULT_MAX_DETECTIONS),
                margin=config.float_setting("margin", 0.0),
                embedding_dims=embedding[0].dims[-1] if embedding else 0,
            )
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"model '{config.name}': {exc}") from None

    # -- a request ------------------------------------------------------------------------------
    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray]]:
        return [self.run_one(request) for request in requests]

    def run_one(self, request: RequestData) -> dict[str, np.ndarray]:
        parameters = request.parameters
        refuse_unknown(parameters, self.parameters)
        threshold = parse_score_threshold(parameters, self.default_score_threshold)
        max_objects = int_parameter(parameters, t.MAX_OBJECTS, self.default_max_objects, minimum=1)
        stage_parameters = self._stage_parameters(parameters)
        detections = self._detect(request, threshold, max_objects)
        images = request.inputs[t.IMAGE]
        kept = [self._kept(detections, row, max_objects) for row in range(images.shape[0])]
        crops = [crop for row, keep in enumerate(kept) for crop in self._crops(images[row], detections, row, keep)]
        answers = self._second_stage(crops, stage_parameters)
        return self._assemble(detections, kept, answers, stage_parameters)

    def _stage_parameters(self, parameters: Mapping[str, Any]) -> dict[str, str]:
        if self.stage.task != t.CLASSIFICATION:
            return {}
        classes = self.stage.classes or t.DEFAULT_TOP_K
        k = parse_top_k(parameters, classes, min(self.stage.default_top_k, classes))
        return {t.TOP_K: str(k)}

    def _call(self, step: str, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str], params) -> dict:
        try:
            return self.infer(model, inputs, outputs, params)
        except InvalidInputError as exc:
            raise InvalidInputError(f"pipeline '{self.pipeline}', stage '{step}' ({model}): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - any failure of a stage fails the request, naming the stage
            raise InferenceError(f"pipeline '{self.pipeline}', stage '{step}' ({model}): {exc}") from None

    def _detect(self, request: RequestData, threshold: float, max_objects: int) -> dict[str, np.ndarray]:
        params = {t.SCORE_THRESHOLD: repr(threshold)}
        params.update(
            {name: str(request.parameters[name]) for name in self.passed_through if name in request.parameters}
        )
        if self.classes is None:  # with a class filter, the detector keeps its own maximum and the filter cuts
            params[t.MAX_DETECTIONS] = str(max_objects)
        inputs = {name: value for name, value in request.inputs.items() if name != t.IMAGE}
        return self._call(f"detect: {self.detector}", self.detector_postprocess, inputs, DETECTION_OUTPUTS, params)

    def _kept(self, detections: Mapping[str, np.ndarray], row: int, max_objects: int) -> np.ndarray:
        """Indices of the row's objects kept: its COUNT, the pipeline's classes, at most max_objects."""
        count = int(detections[t.COUNT][row].reshape(-1)[0])
        keep = np.arange(count)
        if self.classes is not None:
            keep = keep[np.isin(detections[t.CLASS_IDS][row][:count], self.classes)]
        return keep[:max_objects]

    def _crops(self, data: np.ndarray, detections: Mapping[str, np.ndarray], row: int, keep: np.ndarray) -> list:
        if not len(keep):
            return []  # no object: the image is not decoded again
        try:
            image = decode(np.ascontiguousarray(data).tobytes(), self.stage.preprocess.channels)
        except ImageRejectedError as exc:
            raise InferenceError(f"pipeline '{self.pipeline}', stage 'crop': {exc}") from None
        height, width = image.shape[:2]
        crops = []
        for index in keep:
            top, bottom, left, right = crop_window(detections[t.BOXES][row][index], self.margin, height, width)
            crops.append(network_input_of(image[top:bottom, left:right], self.stage.preprocess))
        return crops

    def _second_stage(self, crops: list, parameters: Mapping[str, str]) -> dict[str, np.ndarray]:
        if not crops:
            return {}
        stage = self.stage
        step = f"then: {stage.name}"
        scores = []
        for start in range(0, len(crops), stage.max_batch):
            pixels = batch(crops[start : start + stage.max_batch], stage.preprocess)
            scores.append(self._call(step, stage.model, {stage.input: pixels}, [stage.output], {})[stage.output])
        raw = np.concatenate(scores)
        parts: list[dict[str, np.ndarray]] = []
        renamed = STAGE_OUTPUTS[stage.task]
        for start in range(0, len(raw), stage.postprocess_max_batch):
            chunk = {stage.postprocess_input: raw[start : start + stage.postprocess_max_batch]}
            parts.append(self._call(step, stage.postprocess, chunk, list(renamed), parameters))
        return {renamed[name]: np.concatenate([part[name] for part in parts]) for name in renamed}

    def _empty(self, name: str, parameters: Mapping[str, str]) -> np.ndarray:
        """One object's answer of ``name`` with no rows, for the shapes of a request without objects."""
        if name == t.OBJECT_EMBEDDINGS:
            return np.zeros((0, self.embedding_dims), np.float32)
        k = int(parameters.get(t.TOP_K, "1"))
        dtype = {t.OBJECT_CLASS_IDS: np.int32, t.OBJECT_SCORES: np.float32}.get(name, np.object_)
        return np.zeros((0, k), dtype) if dtype is not np.object_ else np.full((0, k), b"", dtype=np.object_)

    def _assemble(self, detections: Mapping[str, np.ndarray], kept: list[np.ndarray], answers, parameters) -> dict:
        rows = len(kept)
        width = max((len(keep) for keep in kept), default=0)
        out: dict[str, list[np.ndarray]] = {
            name: [] for name in (*DETECTION_OUTPUTS, *STAGE_OUTPUTS[self.stage.task].values())
        }
        start = 0
        for row, keep in enumerate(kept):
            for name in (t.BOXES, t.SCORES, t.CLASS_IDS, t.LABELS):
                out[name].append(pad_rows(detections[name][row][keep], width))
            out[t.COUNT].append(np.array([len(keep)], dtype=np.int32))
            for name in STAGE_OUTPUTS[self.stage.task].values():
                values = answers[name][start : start + len(keep)] if answers else self._empty(name, parameters)
                out[name].append(pad_rows(values, width))
            start += len(keep)
        return {name: np.stack(values) for name, values in out.items()} if rows else {}


def _required(config: ModelConfig, key: str) -> str:
    value = config.setting(key, "")
    if not value:
        raise ConfigError(f"model '{config.name}': parameter '{key}' is missing")
    return value
