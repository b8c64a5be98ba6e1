"""Shared fixtures: paths, real photos, and model repositories served by the real tritonserver."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL_REPOSITORY = ROOT / "model_repository"
# The test data folder (real photos and models): TRITON_VISION_DATA, by default ../shared.
DATA_VARIABLE = "TRITON_VISION_DATA"
SHARED = Path(os.environ.get(DATA_VARIABLE) or ROOT.parent / "shared").resolve()


def shared_path(relative: str) -> Path:
    """A file of the test data folder, or a clean skip naming it when absent."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} is not available (set {DATA_VARIABLE} to the test data folder; default ../shared)")
    return path


@pytest.fixture(scope="session")
def kitten_jpeg() -> bytes:
    return shared_path("images/kitten.jpg").read_bytes()


@pytest.fixture(scope="session")
def chelsea_rgb():
    """scikit-image's chelsea: a real photo of a tabby cat, RGB uint8 (451x300)."""
    from skimage import data

    return data.chelsea()


def ensemble_repository(target: Path, ensemble: str) -> Path:
    """A new repository with an ensemble, the models its steps name, and model_info."""
    from triton_vision_models import tensors as t
    from triton_vision_models.repository import ModelRepository

    composing = ModelRepository.load(MODEL_REPOSITORY).composing_models(ensemble, nested=True)
    return copy_model_dirs(target, list(dict.fromkeys([ensemble, *composing, t.MODEL_INFO])))


def torchvision_detection_repository(target: Path) -> Path:
    """A new repository with the torchvision Faster R-CNN example's ensemble (examples/torchvision_detection,
    written by add-model; its model file not prepared) and the shared models."""
    from triton_vision_authoring.add_model.add_model import add_model

    target.mkdir(parents=True, exist_ok=True)
    add_model(ROOT / "examples" / "torchvision_detection" / "torchvision_detection.toml", target)
    return target


def copy_model_dirs(target: Path, names: list[str]) -> Path:
    """Copy model directories (configs, code, labels; no ONNX files) into a new repository."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copytree(
            MODEL_REPOSITORY / name,
            target / name,
            ignore=shutil.ignore_patterns("*.onnx", "model.source.json", "__pycache__"),
        )
    return target
