"""Detection post-processing: threshold, top-N, boxes back to original pixels, COCO names."""

from triton_vision_models.detection import DetectionPostprocessor
from triton_vision_models.triton_adapter import python_model

TritonPythonModel = python_model(DetectionPostprocessor.from_spec, validate_inputs=False)
