"""Resize an 8-bit image exactly as a reference library does: its filter, its fixed-point arithmetic
and its rounding (``[preprocess] resize_like`` of an ensemble spec).

- ``pillow``: ``PIL.Image.resize`` (torchvision's ``Resize`` on PIL images): a convolution whose
  support widens with the scale when shrinking (antialiased), horizontal then vertical, each pass
  rounded to 8 bits;
- ``opencv``: ``cv2.resize`` (Ultralytics' and YOLOX's letterbox): two-tap bilinear with pixel
  centres aligned and no antialiasing, in 11-bit fixed point.

DALI's own resize computes in float and rounds once, so it lands one level apart from either on a
few percent of pixels; the generated ``dali.py`` calls :func:`resize` (a DALI ``python_function``)
where its pipeline runs on the CPU in this project's DALI backend. Pure NumPy with Pillow/OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PILLOW = "pillow"
OPENCV = "opencv"
DALI = "dali"  # DALI's own resize everywhere (what the GPU path does)
LIBRARIES = (PILLOW, OPENCV, DALI)
# Whether each library's resize filters when shrinking (DALI: the spec's ``antialias``).
ANTIALIASES = {PILLOW: True, OPENCV: False}


def resize(
    image: np.ndarray, size: Sequence[int] | np.ndarray, library: str, interpolation: str = "linear"
) -> np.ndarray:
    """``image`` (H, W, C uint8) resized to ``size`` (height, width) by ``library``'s own code."""
    height, width = int(size[0]), int(size[1])
    image = np.ascontiguousarray(image)
    if library == PILLOW:
        from PIL import Image

        filters = {
            "linear": Image.Resampling.BILINEAR,
            "cubic": Image.Resampling.BICUBIC,
            "nearest": Image.Resampling.NEAREST,
        }
        return np.asarray(Image.fromarray(image).resize((width, height), filters[interpolation]))
    if library == OPENCV:
        import cv2

        flags = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}
        resized = cv2.resize(image, (width, height), interpolation=flags[interpolation])
        return resized if resized.ndim == 3 else resized[:, :, None]
    raise ValueError(f"resize_like must be one of {', '.join(LIBRARIES[:2])}, got {library!r}")
