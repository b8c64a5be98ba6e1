"""What the Python models raise, under the project's one root (:mod:`triton_vision_contract.errors`)."""

from __future__ import annotations

from triton_vision_contract.errors import TritonVisionError

__all__ = [
    "ConfigError",
    "ImageRejectedError",
    "InferenceError",
    "InvalidInputError",
    "InvalidParameterError",
    "ModelFileError",
    "TritonVisionError",
]


class ConfigError(TritonVisionError):
    """A model configuration (config.pbtxt or its parameters) is unusable."""


class ModelFileError(TritonVisionError):
    """A model file is missing, unreadable or does not honour its tensor signature."""


class InvalidInputError(TritonVisionError):
    """A request carries a tensor or parameter the model cannot accept.

    Raised for client mistakes; the adapter answers them with INVALID_ARG.
    """


class InvalidParameterError(InvalidInputError):
    """A request parameter (top_k, threshold, ...) has the wrong type or range."""


class ImageRejectedError(InvalidInputError):
    """An encoded image is refused before decoding (format, size, corruption)."""


class InferenceError(TritonVisionError):
    """A model failed while running a batch that passed validation."""
