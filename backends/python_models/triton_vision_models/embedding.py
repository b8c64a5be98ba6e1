"""Embedding post-processing: the model's output as one vector per image, pooled and L2-normalised
(pure NumPy).

Config parameters (``triton-vision add-model`` writes them from the ensemble spec):

- ``pooling``: ``none`` (the model's output is already one vector per image: [D], or [D, 1, 1] from
  a global average pool), ``cls`` (a token output [T, D]: its first token, as ViT/CLIP/DINO heads
  read the class token) or ``mean`` (a token output [T, D]: the mean over all T tokens);
- ``normalize``: ``true`` (default): each vector divided by ``max(||x||_2, 1e-12)`` (the rule of
  ``torch.nn.functional.normalize``; an all-zero vector stays zero), so that a dot product is the
  cosine similarity; ``false``: the model's own scale.

The answer, EMBEDDING FP32 [D] per image, takes no request parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import tensors as t
from .errors import ConfigError, InferenceError, InvalidInputError
from .model_config import ModelConfig, RequestData
from .parameters import refuse_unknown

NO_POOLING = "none"
CLS_TOKEN = "cls"
MEAN_TOKENS = "mean"
POOLINGS = (NO_POOLING, CLS_TOKEN, MEAN_TOKENS)
NORM_EPSILON = 1e-12  # torch.nn.functional.normalize's eps: a zero vector is not divided by zero


def pool(values: np.ndarray, pooling: str, where: str = f"input '{t.RAW_EMBEDDING}'") -> np.ndarray:
    """[B, ...] model output -> [B, D] float64: tokens [B, T, D] pooled, [B, D] / [B, D, 1, 1] flattened."""
    if pooling == NO_POOLING:
        if values.ndim not in (2, 4) or values.shape[2:] not in ((), (1, 1)):
            raise InvalidInputError(
                f"{where}: expected [batch, dim] or [batch, dim, 1, 1], got shape {list(values.shape)}"
            )
        return values.reshape(values.shape[0], -1).astype(np.float64)
    if values.ndim != 3 or values.shape[1] < 1:
        raise InvalidInputError(
            f"{where}: pooling '{pooling}' reads tokens [batch, tokens, dim], got shape {list(values.shape)}"
        )
    tokens = values.astype(np.float64)
    return tokens[:, 0, :] if pooling == CLS_TOKEN else tokens.mean(axis=1)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by max(its L2 norm, 1e-12)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, NORM_EPSILON)


class EmbeddingPostprocessor:
    """Runner: the model's output for a batch of images -> EMBEDDING FP32 [B, D]."""

    def __init__(self, *, pooling: str = NO_POOLING, normalize: bool = True, name: str = "embedding") -> None:
        if pooling not in POOLINGS:
            raise ConfigError(f"parameter 'pooling' must be one of {', '.join(POOLINGS)}, got '{pooling}'")
        self.pooling = pooling
        self.normalize = normalize
        self.where = f"model '{name}', input '{t.RAW_EMBEDDING}'"

    @classmethod
    def from_config(cls, config: ModelConfig) -> EmbeddingPostprocessor:
        normalize = config.setting("normalize", "true")
        if normalize not in ("true", "false"):
            raise ConfigError(f"model '{config.name}': parameter 'normalize' must be true or false, got '{normalize}'")
        try:
            return cls(pooling=config.setting("pooling", NO_POOLING), normalize=normalize == "true", name=config.name)
        except ConfigError as exc:
            raise ConfigError(f"model '{config.name}': {exc}") from None

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray]]:
        return [self.run_one(request) for request in requests]

    def run_one(self, request: RequestData) -> dict[str, np.ndarray]:
        refuse_unknown(request.parameters, ())
        vectors = pool(request.inputs[t.RAW_EMBEDDING], self.pooling, self.where)
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
        if bad.size:  # a NaN would make every similarity with it NaN, silently
            raise InferenceError(f"{self.where}: the model's output for image {int(bad[0])} is not finite (NaN or inf)")
        if self.normalize:
            vectors = l2_normalise(vectors)
        return {t.EMBEDDING_OUTPUT: vectors.astype(np.float32)}
