"""Python-based Triton backend named ``fused_ensemble``: an ensemble's steps run in one process.

``triton-vision serve`` serves each ensemble of the repository with this backend on the local
runtime, where every composing model would otherwise be a Python stub process of its own
(:mod:`triton_vision_models.fused`; docs/performance.md).
"""

from triton_vision_models.fused import FusedEnsemble
from triton_vision_models.triton_adapter import python_model

TritonPythonModel = python_model(FusedEnsemble.from_config)
