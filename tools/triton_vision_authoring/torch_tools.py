"""torch and torchvision, needed only to export a torchvision model to ONNX (the ``export`` extra).

Serving never needs them: where they are missing, ``models prepare`` serves a small stand-in
with the same tensor signature and says how to get the real architecture (:data:`EXPORT_HINT`).
torch's default wheels bring its CUDA libraries (gigabytes); the CPU-only wheels come from
PyTorch's own package index, which pip reaches with ``--extra-index-url``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from triton_vision_authoring.errors import RuntimeMissingError

CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"
EXPORT_HINT = (
    f"pip install 'triton-vision[export]' (CPU-only torch, far smaller: add --extra-index-url {CPU_INDEX_URL}; "
    "in a checkout: make export-tools)"
)


class ExportToolsMissingError(RuntimeMissingError):
    """torch/torchvision are not installed."""


def available() -> bool:
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("torchvision") is not None


def require_torch(what: str) -> Any:
    """The ``torch`` module, or :class:`ExportToolsMissingError` naming what needed it."""
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError:
        raise ExportToolsMissingError(f"{what} needs torch and torchvision: {EXPORT_HINT}") from None
    return torch
