"""Detection post-processing: threshold, top-N, boxes back to original pixels, COCO names (pure NumPy).

The detector answers in the pixels of its (resized) input; ``detection_preprocess`` also hands
over the decoded image's height/width and the resized height/width, so a box maps back by
x * (W0 / W1), y * (H0 / H1) (the inverse of the resize) and is clipped to [0, W0] x [0, H0].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import tensors as t
from .errors import ConfigError, InferenceError, InvalidInputError, InvalidParameterError
from .labels import labels_of
from .parameters import float_parameter, int_parameter
from .spec import ModelSpec, RequestData

COCO_ID_COUNT = 91  # torchvision/COCO category ids 0..90; 0 is the background, 11 ids are unused


def parse_score_threshold(parameters: Mapping[str, Any], default: float = t.DEFAULT_SCORE_THRESHOLD) -> float:
    """The request's ``score_threshold`` parameter, checked: a number in [0, 1]."""
    return float_parameter(parameters, t.SCORE_THRESHOLD, default, minimum=0.0, maximum=1.0)


def parse_max_detections(parameters: Mapping[str, Any], default: int = t.DEFAULT_MAX_DETECTIONS) -> int:
    """The request's ``max_detections`` parameter, checked: an integer >= 1."""
    return int_parameter(parameters, t.MAX_DETECTIONS, default, minimum=1)


def select_detections(scores: np.ndarray, threshold: float, max_detections: int) -> np.ndarray:
    """Indices of the scores >= ``threshold``, best first, at most ``max_detections``.

    Equal scores keep the detector's order (a stable sort), so ties are reproducible.
    """
    candidates = np.flatnonzero(scores >= threshold)
    order = np.argsort(-scores[candidates], kind="stable")
    return candidates[order][:max_detections]


def map_boxes_to_original(boxes: np.ndarray, resized_hw: Sequence[int], original_hw: Sequence[int]) -> np.ndarray:
    """x1, y1, x2, y2 from resized-input pixels to original pixels, clipped to the original image."""
    resized_h, resized_w = (float(v) for v in resized_hw)
    original_h, original_w = (float(v) for v in original_hw)
    if min(resized_h, resized_w, original_h, original_w) <= 0:
        raise InferenceError(
            f"image sizes must be positive, got resized {list(resized_hw)} original {list(original_hw)}"
        )
    scale = np.array([original_w / resized_w, original_h / resized_h] * 2, dtype=np.float64)
    limit = np.array([original_w, original_h] * 2, dtype=np.float64)
    mapped = boxes.astype(np.float64).reshape(-1, 4) * scale
    return np.clip(mapped, 0.0, limit).astype(np.float32)


def label_table(labels: Sequence[str]) -> np.ndarray:
    """Labels as the BYTES array a response carries, built once."""
    return np.array([label.encode("utf-8") for label in labels], dtype=np.object_)


def label_names(class_ids: np.ndarray, labels: Sequence[str] | np.ndarray) -> np.ndarray:
    """COCO names for category ids (91-id numbering: index = id)."""
    if class_ids.size and (class_ids.min() < 0 or class_ids.max() >= len(labels)):
        raise InferenceError(f"class ids must be in 0..{len(labels) - 1}, got {class_ids.tolist()}")
    table = labels if isinstance(labels, np.ndarray) else label_table(labels)
    return table[class_ids.astype(np.int64)]


PADDING = {np.dtype(np.object_): b""}


def pad_rows(values: np.ndarray, rows: int) -> np.ndarray:
    """``values`` with zero rows (b"" for BYTES) appended up to ``rows`` along the first axis."""
    if values.shape[0] >= rows:
        return values
    padding = np.full((rows - values.shape[0], *values.shape[1:]), PADDING.get(values.dtype, 0), dtype=values.dtype)
    return np.concatenate([values, padding])


class DetectionPostprocessor:
    """Runner: detector output for a batch of images -> thresholded detections in original pixels."""

    def __init__(
        self,
        labels: Sequence[str],
        *,
        default_score_threshold: float = t.DEFAULT_SCORE_THRESHOLD,
        default_max_detections: int = t.DEFAULT_MAX_DETECTIONS,
    ) -> None:
        if len(labels) != COCO_ID_COUNT:
            raise ConfigError(f"the COCO label file must have {COCO_ID_COUNT} lines (ids 0..90), got {len(labels)}")
        self.labels = label_table(labels)
        self.default_score_threshold = default_score_threshold
        self.default_max_detections = default_max_detections

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> DetectionPostprocessor:
        labels = labels_of(spec)
        defaults = {
            t.SCORE_THRESHOLD: spec.parameter("default_score_threshold", str(t.DEFAULT_SCORE_THRESHOLD)),
            t.MAX_DETECTIONS: spec.parameter("default_max_detections", str(t.DEFAULT_MAX_DETECTIONS)),
        }
        try:
            threshold = parse_score_threshold(defaults)
            max_detections = parse_max_detections(defaults)
        except InvalidParameterError as exc:
            raise ConfigError(f"model '{spec.name}': default {exc}") from None
        return cls(labels, default_score_threshold=threshold, default_max_detections=max_detections)

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray]]:
        return [self.run_one(request) for request in requests]

    def run_one(self, request: RequestData) -> dict[str, np.ndarray]:
        """A request of B images: per image its COUNT detections, padded to the request's largest COUNT."""
        threshold = parse_score_threshold(request.parameters, self.default_score_threshold)
        max_detections = parse_max_detections(request.parameters, self.default_max_detections)
        inputs = request.inputs
        boxes, scores, ids = inputs[t.RAW_BOXES], inputs[t.RAW_SCORES], inputs[t.RAW_LABELS]
        counts, original, resized = inputs[t.RAW_COUNT], inputs[t.ORIGINAL_SIZE], inputs[t.RESIZED_SIZE]
        batch = boxes.shape[0]
        if (
            boxes.ndim != 3
            or boxes.shape[2] != 4
            or scores.shape != boxes.shape[:2]
            or ids.shape != boxes.shape[:2]
            or counts.shape != (batch, 1)
            or original.shape != (batch, 2)
            or resized.shape != (batch, 2)
            or (batch and (counts.min() < 0 or counts.max() > boxes.shape[1]))
        ):
            raise InvalidInputError(
                "detection_postprocess: inconsistent inputs "
                f"(boxes {list(boxes.shape)}, scores {list(scores.shape)}, labels {list(ids.shape)}, "
                f"counts {counts.reshape(-1).tolist()}, sizes {list(original.shape)} {list(resized.shape)})"
            )
        results = []
        for i in range(batch):
            n = int(counts[i, 0])
            results.append(
                self.one_image(
                    boxes[i, :n], scores[i, :n], ids[i, :n], resized[i], original[i], threshold, max_detections
                )
            )
        width = max((len(r[t.SCORES]) for r in results), default=0)
        return {
            name: np.stack([r[name] if name == t.COUNT else pad_rows(r[name], width) for r in results])
            for name in (results[0] if results else ())
        }

    def one_image(
        self, boxes, scores, ids, resized_hw, original_hw, threshold, max_detections
    ) -> dict[str, np.ndarray]:
        keep = select_detections(scores, threshold, max_detections)
        class_ids = ids[keep].astype(np.int32)
        return {
            t.BOXES: map_boxes_to_original(boxes[keep], resized_hw, original_hw),
            t.SCORES: scores[keep].astype(np.float32),
            t.CLASS_IDS: class_ids,
            t.LABELS: label_names(class_ids, self.labels),
            t.COUNT: np.array([len(keep)], dtype=np.int32),
        }
