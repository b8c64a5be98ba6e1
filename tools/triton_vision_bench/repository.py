"""The repository the bench serves: only the ensemble and its models, ONNX files linked, not copied."""

from __future__ import annotations

import shutil
from pathlib import Path

from triton_vision_bench.profiles import Profile


def bench_repository(source: Path, profile: Profile, target: Path) -> Path:
    """``target`` holding the ensemble and every model it runs (no ``model_info``: nothing asks it)."""
    for name in [profile.ensemble, *profile.steps]:
        shutil.copytree(source / name, target / name, ignore=shutil.ignore_patterns("*.onnx", "__pycache__"))
        for onnx_file in (source / name).glob("*/*.onnx"):
            link = target / name / onnx_file.parent.name / onnx_file.name
            link.symlink_to(onnx_file.resolve())
    return target
