"""Classification post-processing: softmax, top-k and label lookup (pure NumPy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import tensors as t
from .errors import ConfigError
from .labels import labels_of
from .parameters import int_parameter
from .spec import ModelSpec, RequestData


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, stable for large logits."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest scores per row, descending; ties keep the lower id."""
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    return order.astype(np.int32), np.take_along_axis(scores, order, axis=-1)


def parse_top_k(parameters: Mapping[str, Any], num_classes: int, default: int = t.DEFAULT_TOP_K) -> int:
    """The request's ``top_k`` parameter, checked: an integer in 1..num_classes."""
    return int_parameter(parameters, t.TOP_K, default, minimum=1, maximum=num_classes)


class ClassificationPostprocessor:
    """Runner: logits [B, C] -> top-k class ids, probabilities and labels per image."""

    def __init__(self, labels: Sequence[str], *, default_top_k: int = t.DEFAULT_TOP_K) -> None:
        self.labels = np.array([label.encode("utf-8") for label in labels], dtype=np.object_)
        self.default_top_k = default_top_k

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> ClassificationPostprocessor:
        labels = labels_of(spec)
        logits = spec.input(t.LOGITS)
        if logits.dims and logits.dims[-1] > 0 and logits.dims[-1] != len(labels):
            raise ConfigError(
                f"model '{spec.name}': input '{t.LOGITS}' has {logits.dims[-1]} classes, label file has {len(labels)}"
            )
        return cls(labels, default_top_k=spec.int_parameter("default_top_k", t.DEFAULT_TOP_K))

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray]]:
        return [self.run_one(request) for request in requests]

    def run_one(self, request: RequestData) -> dict[str, np.ndarray]:
        logits = request.inputs[t.LOGITS]
        k = parse_top_k(request.parameters, len(self.labels), self.default_top_k)
        ids, scores = top_k(softmax(logits), k)
        return {t.CLASS_IDS: ids, t.SCORES: scores, t.LABELS: self.labels[ids]}
