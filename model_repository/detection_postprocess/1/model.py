"""Detection post-processing of 'detection' (generated; its config's parameters set it up)."""

from triton_vision_models.detection import DetectionPostprocessor
from triton_vision_models.triton_adapter import python_model

TritonPythonModel = python_model(DetectionPostprocessor.from_config, validate_inputs=False)
