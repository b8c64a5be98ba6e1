"""Shared by the GPU tier: is there a CUDA device for DALI, and real JPEG photos to decode."""

from __future__ import annotations

import cv2
import numpy as np

from tests.conftest import MODEL_REPOSITORY
from tests.support.modelconfigs import config_for
from triton_vision_models.dali_runner import DaliRunner


def cuda_device_count() -> int:
    try:
        from nvidia.dali import backend

        return int(backend.GetCUDADeviceCount())  # type: ignore[attr-defined]  # compiled, not in its stub
    except Exception:  # noqa: BLE001 - no DALI or no driver: no GPU tier
        return 0


def jpeg_photos() -> dict[str, bytes]:
    """scikit-image's real photos as JPEGs (nvJPEG decodes JPEG on the GPU; PNG stays on the CPU)."""
    from skimage import data

    photos = {}
    for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry"):
        rgb = getattr(data, name)()
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        photos[name] = encoded.tobytes()
    return photos


def runner(model: str, *, gpu: bool) -> DaliRunner:
    extra = {"model_instance_kind": "GPU", "model_instance_device_id": "0"} if gpu else {}
    return DaliRunner.from_config(config_for(MODEL_REPOSITORY / model, **extra))


def row(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)[None]
