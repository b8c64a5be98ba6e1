"""Checks encoded images before decoding (see imageguard.ImageGuard)."""

from triton_vision_models.imageguard import ImageGuard
from triton_vision_models.triton_adapter import python_model

TritonPythonModel = python_model(ImageGuard.from_config)
