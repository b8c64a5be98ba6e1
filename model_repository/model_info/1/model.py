"""Answers with the sources of the repository's model files (see provenance.ModelInfo)."""

from triton_vision_models.provenance import ModelInfo
from triton_vision_models.triton_adapter import python_model

TritonPythonModel = python_model(ModelInfo.from_config)
