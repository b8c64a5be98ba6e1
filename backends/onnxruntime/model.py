"""Python-based Triton backend named ``onnxruntime``.

Triton maps ``platform: "onnxruntime_onnx"`` to the backend ``onnxruntime``; where the
server has no native ``libtriton_onnxruntime.so`` (the local, CPU-only server), this file in
``<backend-dir>/onnxruntime/model.py`` serves the same, unchanged config with ONNX Runtime,
batching the requests of one execution whose shapes agree.
"""

from triton_vision_models.onnx_runner import OnnxRunner
from triton_vision_models.triton_adapter import python_model

TritonPythonModel = python_model(OnnxRunner.from_config)
