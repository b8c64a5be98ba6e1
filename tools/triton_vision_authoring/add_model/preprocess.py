"""A spec's preprocessing done with OpenCV and NumPy, in-process: the bench's in-process and
client-side paths and ``add-model --verify`` use it (the server does the same with DALI).

Geometry from :mod:`triton_vision_models.geometry` (the rules the DALI pipelines and the
post-processing follow); the resize of the spec's ``resize_like`` library exactly (as the server's
CPU path), or with ``resize_like = "dali"`` OpenCV's (``INTER_AREA`` when an antialiased resize
shrinks, as Pillow's filters do; ``INTER_LINEAR``/``INTER_CUBIC``/``INTER_NEAREST`` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from triton_vision_authoring.add_model.ensemble_spec import PreprocessSpec
from triton_vision_models import exact_resize, geometry
from triton_vision_models.errors import ImageRejectedError


@dataclass(frozen=True)
class NetworkInput:
    pixels: np.ndarray  # one image's network input: [3, H, W] or [H, W, 3], float32 or uint8
    original: geometry.Size
    resized: geometry.Size


def decode(data: bytes, channels: str = "RGB") -> np.ndarray:
    """UINT8 [H, W, 3] in ``channels`` order (EXIF orientation applied, as the DALI decoder does)."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageRejectedError("OpenCV cannot decode the image")
    return bgr if channels == "BGR" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _resize(image: np.ndarray, size: geometry.Size, pre: PreprocessSpec) -> np.ndarray:
    import cv2

    height, width = size
    if pre.resize_like != exact_resize.DALI:
        return exact_resize.resize(image, size, pre.resize_like, pre.interpolation)
    shrinking = height < image.shape[0] or width < image.shape[1]
    if pre.interpolation == "nearest":
        flag = cv2.INTER_NEAREST
    elif pre.antialias and shrinking:
        flag = cv2.INTER_AREA
    else:
        flag = cv2.INTER_CUBIC if pre.interpolation == "cubic" else cv2.INTER_LINEAR
    source = image.astype(np.float32) if pre.rule.mode == geometry.KEEP_ASPECT else image
    return cv2.resize(source, (width, height), interpolation=flag)


def _normalise(pixels: np.ndarray, pre: PreprocessSpec) -> np.ndarray:
    if pre.dtype == "uint8":
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    mean = np.array(pre.mean, np.float32) * 255
    std = np.array(pre.std, np.float32) * 255
    return ((pixels.astype(np.float32) - mean) / std).astype(np.float32)


def fill_value(pre: PreprocessSpec) -> np.ndarray:
    """The padding, per channel, in the network input's units."""
    if pre.dtype == "uint8":
        return np.full(3, float(pre.fill), np.float32)
    if pre.fill == "mean":
        return np.zeros(3, np.float32)
    return (float(pre.fill) - np.array(pre.mean, np.float32) * 255) / (np.array(pre.std, np.float32) * 255)


def network_input(data: bytes, pre: PreprocessSpec) -> NetworkInput:
    """One encoded image as the spec's network input (HWC or CHW, the spec's dtype)."""
    return network_input_of(decode(data, pre.channels), pre)


def network_input_of(image: np.ndarray, pre: PreprocessSpec) -> NetworkInput:
    """A decoded image (UINT8 [H, W, 3] in ``pre.channels`` order) as the spec's network input."""
    original = (int(image.shape[0]), int(image.shape[1]))
    rule = pre.rule
    placement = rule.placement(original)
    resized = _normalise(_resize(image, placement.resized, pre), pre)
    net_h, net_w = placement.network
    canvas = np.empty((net_h, net_w, 3), dtype=resized.dtype)
    canvas[...] = fill_value(pre).astype(resized.dtype)
    (y0, y1), (x0, x1) = placement.visible
    dy, dx = placement.offset
    canvas[y0:y1, x0:x1] = resized[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    pixels = canvas.transpose(2, 0, 1) if pre.layout == "NCHW" else canvas
    return NetworkInput(np.ascontiguousarray(pixels), original, placement.resized)


def batch(inputs: list[NetworkInput], pre: PreprocessSpec) -> np.ndarray:
    """A batch of network inputs; keep-aspect images are padded bottom/right to the largest (zeros)."""
    if pre.rule.mode != geometry.KEEP_ASPECT:
        return np.stack([i.pixels for i in inputs])
    axes = (1, 2) if pre.layout == "NCHW" else (0, 1)
    height = max(i.pixels.shape[axes[0]] for i in inputs)
    width = max(i.pixels.shape[axes[1]] for i in inputs)
    padded = []
    for item in inputs:
        pad = [(0, 0)] * 3
        pad[axes[0]] = (0, height - item.pixels.shape[axes[0]])
        pad[axes[1]] = (0, width - item.pixels.shape[axes[1]])
        padded.append(np.pad(item.pixels, pad))
    return np.stack(padded)


def with_changes(pre: PreprocessSpec, **changes) -> PreprocessSpec:
    """The same preprocessing with some fields changed (``verify`` tries alternatives)."""
    return replace(pre, **changes)
