"""Reference preprocessing in the bench process: OpenCV + NumPy, one function per task.

The seed's path (the client preprocesses and sends FP32 tensors to the bare ONNX model) and the
in-process ceiling run these. Each follows its task's DALI pipeline, from the same constants
(:mod:`triton_vision_models.tensors`: ImageNet mean and std, the resize rules' sizes) and
returns what that pipeline returns, under the pipeline's output names (``PIXELS``,
``RESIZED_SIZE``), with a batch dimension of 1. OpenCV's resize is not DALI's: the same
picture, not the same bits.

This module is the one to replace when the preprocessing of any model is read from its spec:
the rest of the bench asks only :data:`REFERENCE` and :data:`OUTPUTS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from triton_vision_models import tensors as t

from .messages import BenchError

Tensors = dict[str, np.ndarray]
MEAN = np.array(t.IMAGENET_MEAN, dtype=np.float32) * 255  # in pixel units, as the pipelines apply them
STD = np.array(t.IMAGENET_STD, dtype=np.float32) * 255


def decode_rgb(data: bytes) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BenchError("OpenCV could not decode an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def resize(rgb: np.ndarray, height: int, width: int, shrink: int, enlarge: int) -> np.ndarray:
    """``rgb`` at (height, width): OpenCV's ``shrink`` interpolation when it gets smaller, ``enlarge``'s otherwise."""
    import cv2

    smaller = height < rgb.shape[0] or width < rgb.shape[1]
    return cv2.resize(rgb, (width, height), interpolation=shrink if smaller else enlarge)


def normalise_chw(rgb: np.ndarray) -> np.ndarray:
    """(x - mean) / std per channel, HWC uint8 -> CHW float32."""
    return ((rgb.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)


def classification(data: bytes) -> Tensors:
    """Shorter side to 256 (area; linear when enlarging), centre crop 224 (start rounded half up),
    mean/std: ``PIXELS`` [1, 3, 224, 224]."""
    import cv2

    rgb = decode_rgb(data)
    height, width = rgb.shape[:2]
    scale = t.CLASSIFIER_RESIZE_SHORTER / min(height, width)
    rgb = resize(rgb, round(height * scale), round(width * scale), cv2.INTER_AREA, cv2.INTER_LINEAR)
    height, width = rgb.shape[:2]
    crop = t.CLASSIFIER_INPUT_SIZE
    top, left = (height - crop + 1) // 2, (width - crop + 1) // 2
    return {t.PIXELS: normalise_chw(rgb[top : top + crop, left : left + crop])[None]}


def detection(data: bytes) -> Tensors:
    """torchvision's rule: scale = min(800 / shorter, 1333 / longer), sides floored, bilinear;
    ``PIXELS`` [1, 3, h, w] and ``RESIZED_SIZE`` [1, 2] (INT64 h, w)."""
    import cv2

    rgb = decode_rgb(data)
    height, width = rgb.shape[:2]
    scale = min(t.DETECTOR_MIN_SIZE / min(height, width), t.DETECTOR_MAX_SIZE / max(height, width))
    size = (math.floor(height * scale), math.floor(width * scale))
    rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return {t.PIXELS: normalise_chw(rgb)[None], t.RESIZED_SIZE: np.array([size], dtype=np.int64)}


def segmentation(data: bytes) -> Tensors:
    """Longer side to 520 (area; linear when enlarging; sides rounded half up), top-left in a zero
    520x520 canvas after mean/std: ``PIXELS`` [1, 3, 520, 520]."""
    import cv2

    canvas = t.SEGMENTATION_CANVAS
    rgb = decode_rgb(data)
    height, width = rgb.shape[:2]
    scale = canvas / max(height, width)
    size = (min(canvas, int(height * scale + 0.5)), min(canvas, int(width * scale + 0.5)))
    rgb = resize(rgb, size[0], size[1], cv2.INTER_AREA, cv2.INTER_LINEAR)
    pixels = np.zeros((1, 3, canvas, canvas), dtype=np.float32)
    pixels[0, :, : size[0], : size[1]] = normalise_chw(rgb)
    return {t.PIXELS: pixels}


# Each task's reference and the outputs it returns (the task's preprocessing step's outputs that
# the ONNX model reads).
REFERENCE: dict[str, Callable[[bytes], Tensors]] = {
    t.CLASSIFICATION: classification,
    t.DETECTION: detection,
    t.SEGMENTATION: segmentation,
}
OUTPUTS: dict[str, tuple[str, ...]] = {
    t.CLASSIFICATION: (t.PIXELS,),
    t.DETECTION: (t.PIXELS, t.RESIZED_SIZE),
    t.SEGMENTATION: (t.PIXELS,),
}
