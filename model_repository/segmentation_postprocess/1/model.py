"""Segmentation post-processing: class-id mask at the original size, fractions, optional overlay."""

from triton_vision_models.segmentation import SegmentationPostprocessor
from triton_vision_models.triton_adapter import python_model

TritonPythonModel = python_model(SegmentationPostprocessor.from_spec)
