"""Classification post-processing: softmax, top-k (request parameter ``top_k``), labels."""

from triton_vision_models.classification import ClassificationPostprocessor
from triton_vision_models.triton_adapter import python_model

TritonPythonModel = python_model(ClassificationPostprocessor.from_spec)
