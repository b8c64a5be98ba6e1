"""Preprocessing in the bench process: the ensemble's own spec, done with OpenCV + NumPy.

The client-side-preprocessing baseline (the client preprocesses and sends FP32 tensors to the bare ONNX model) and the
in-process ceiling run it. The rule is the ensemble's ``spec.toml`` (the one its DALI pipeline was
generated from), done by :mod:`triton_vision_authoring.add_model.preprocess`; it returns what the
pipeline returns, under the pipeline's output names (``PIXELS``, ``ORIGINAL_SIZE``,
``RESIZED_SIZE``), with a batch dimension of 1. OpenCV's resize is not DALI's: the same picture,
not the same bits.
"""

from __future__ import annotations

import numpy as np

from triton_vision_authoring.add_model.add_model import SPEC_FILENAME
from triton_vision_authoring.add_model.ensemble_spec import load_spec
from triton_vision_bench.messages import BenchError, BenchUsageError
from triton_vision_models import tensors as t
from triton_vision_models.errors import ConfigError, ImageRejectedError
from triton_vision_models.preprocessing import PreprocessSpec, network_input
from triton_vision_models.repository import ModelRepository

Tensors = dict[str, np.ndarray]
OUTPUTS = (t.PIXELS, t.ORIGINAL_SIZE, t.RESIZED_SIZE)  # what a generated preprocessing model returns


def spec_of(repository: ModelRepository, ensemble: str) -> PreprocessSpec:
    """The ensemble's preprocessing, from ``<repository>/<ensemble>/spec.toml``."""
    path = repository.path / ensemble / SPEC_FILENAME
    if not path.is_file():
        raise BenchUsageError(
            f"ensemble '{ensemble}' has no {SPEC_FILENAME} (ensembles written by `triton-vision add-model` have one): "
            "the bench cannot preprocess in-process without it"
        )
    try:
        return load_spec(path).preprocess
    except ConfigError as exc:
        raise BenchUsageError(f"ensemble '{ensemble}': {exc}") from None


def tensors(data: bytes, pre: PreprocessSpec) -> Tensors:
    """One encoded image as the preprocessing model's outputs, with a batch dimension of 1."""
    try:
        made = network_input(data, pre)
    except ImageRejectedError as exc:
        raise BenchError(f"OpenCV could not decode an image: {exc}") from None
    return {
        t.PIXELS: made.pixels[None],
        t.ORIGINAL_SIZE: np.array([made.original], dtype=np.int64),
        t.RESIZED_SIZE: np.array([made.resized], dtype=np.int64),
    }
