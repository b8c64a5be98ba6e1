"""Import a Python file by its path (a DALI pipeline file, a model's ``model.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .errors import TritonVisionError


def import_file(path: Path, module_name: str, what: str, error: type[TritonVisionError]) -> ModuleType:
    """``path`` imported as ``module_name``; ``error`` naming ``what`` and the path when it is
    missing or cannot be imported (what it raises while it runs is its own)."""
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise error(f"cannot import {what} {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    return module
