"""Classification post-processing of 'classification' (generated; its config's parameters set it up)."""

from triton_vision_models.classification import ClassificationPostprocessor
from triton_vision_models.triton_adapter import python_model

TritonPythonModel = python_model(ClassificationPostprocessor.from_config)
