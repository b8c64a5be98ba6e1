"""A spec's preprocessing done with OpenCV, Pillow and NumPy: the pipelines' second stage (each
object's crop), the bench's in-process and client-side paths and ``add-model --verify`` use it; a
whole photo's preprocessing model does the same in its DALI pipeline (the same geometry, and the
same resize on the CPU path).

Geometry from :mod:`triton_vision_models.geometry` (the rules the DALI pipelines and the
post-processing follow); the resize of the spec's ``resize_like`` library exactly (as the server's
CPU path), or with ``resize_like = "dali"`` OpenCV's (``INTER_AREA`` when an antialiased resize
shrinks, as Pillow's filters do; ``INTER_LINEAR``/``INTER_CUBIC``/``INTER_NEAREST`` otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from . import exact_resize, geometry
from .errors import ConfigError, ImageRejectedError


@dataclass(frozen=True)
class PreprocessSpec:
    """The ``[preprocess]`` table of an ensemble spec: how a decoded image becomes a network input."""

    rule: geometry.ResizeRule
    channels: str = "RGB"
    layout: str = "NCHW"
    dtype: str = "float32"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    interpolation: str = "linear"
    antialias: bool = True
    fill: float | str = "mean"
    # Whose resize and rounding the CPU path reproduces exactly: pillow, opencv, or dali (DALI's own).
    resize_like: str = exact_resize.DALI
    # The spec wrote them in 0..255 pixel units (pixel_mean/pixel_std): said so where they are described.
    pixel_units: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain values (a generated model's config parameter carries them)."""
        return asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PreprocessSpec:
        try:
            fields = dict(value)
            rule = dict(fields.pop("rule"))
            if rule.get("size") is not None:
                rule["size"] = tuple(rule["size"])
            for key in ("mean", "std"):
                fields[key] = tuple(fields[key])
            return cls(rule=geometry.ResizeRule(**rule), **fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"a preprocessing description is malformed: {exc}") from None


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
