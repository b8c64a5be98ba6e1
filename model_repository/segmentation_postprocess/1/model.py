"""Segmentation post-processing of 'segmentation' (generated; its config's parameters set it up)."""

from triton_vision_models.segmentation import SegmentationPostprocessor
from triton_vision_models.triton_adapter import python_model

TritonPythonModel = python_model(SegmentationPostprocessor.from_config)
