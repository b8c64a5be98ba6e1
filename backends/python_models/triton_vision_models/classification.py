"""Classification post-processing: softmax (of logits), top-k and label lookup (pure NumPy).

Config parameters: ``labels`` (the label file, relative to the repository; CLASS_IDS index its
lines), ``default_top_k``, and ``output``: ``logits`` (softmax applied here) or ``probabilities``
(the model applied it, e.g. TensorFlow/TFLite exports).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import tensors as t
from .errors import ConfigError
from .labels import labels_of
from .model_config import ModelConfig, RequestData
from .parameters import int_parameter, refuse_unknown


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


LOGITS_OUTPUT = "logits"
PROBABILITIES_OUTPUT = "probabilities"
OUTPUTS = (LOGITS_OUTPUT, PROBABILITIES_OUTPUT)
PARAMETERS = (t.TOP_K,)  # the request parameters a classification ensemble takes


class ClassificationPostprocessor:
    """Runner: scores [B, C] (logits or probabilities) -> top-k class ids, probabilities and labels."""

    def __init__(
        self, labels: Sequence[str], *, default_top_k: int = t.DEFAULT_TOP_K, output: str = LOGITS_OUTPUT
    ) -> None:
        if output not in OUTPUTS:
            raise ConfigError(f"parameter 'output' must be one of {', '.join(OUTPUTS)}, got '{output}'")
        self.labels = np.array([label.encode("utf-8") for label in labels], dtype=np.object_)
        self.default_top_k = min(default_top_k, len(labels))  # a 3-class model answers 3 by default, not 5
        self.output = output

    @classmethod
    def from_config(cls, config: ModelConfig) -> ClassificationPostprocessor:
        labels = labels_of(config)
        scores = config.input(t.LOGITS)
        classes = int(np.prod(scores.dims)) if scores.dims and min(scores.dims) > 0 else 0
        if classes and classes != len(labels):
            raise ConfigError(
                f"model '{config.name}': input '{t.LOGITS}' has {classes} classes, label file has {len(labels)}"
            )
        try:
            return cls(
                labels,
                default_top_k=config.int_setting("default_top_k", t.DEFAULT_TOP_K),
                output=config.setting("output", LOGITS_OUTPUT),
            )
        except ConfigError as exc:
            raise ConfigError(f"model '{config.name}': {exc}") from None

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray]]:
        return [self.run_one(request) for request in requests]

    def run_one(self, request: RequestData) -> dict[str, np.ndarray]:
        refuse_unknown(request.parameters, PARAMETERS)
        scores = request.inputs[t.LOGITS]
        scores = scores.reshape(scores.shape[0], -1)  # [B, 1, C] and [B, 1, 1, C] exports too
        k = parse_top_k(request.parameters, len(self.labels), self.default_top_k)
        probabilities = softmax(scores) if self.output == LOGITS_OUTPUT else scores.astype(np.float32)
        ids, values = top_k(probabilities, k)
        return {t.CLASS_IDS: ids, t.SCORES: values, t.LABELS: self.labels[ids]}
