"""Python-based Triton backend named ``dali``.

Where the server has no native DALI backend (the local, CPU-only server), this file in
``<backend-dir>/dali/model.py`` serves ``backend: "dali"`` models unchanged: it builds the
version folder's autoserialized ``dali.py`` pipeline in-process (``device_id=None`` on CPU)
and feeds it one batch made of the images of all requests in an execution.
"""

from triton_vision_models.dali_runner import DaliRunner
from triton_vision_models.triton_adapter import python_model

TritonPythonModel = python_model(DaliRunner.from_config)
