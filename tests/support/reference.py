"""Reference preprocessing, independent of DALI and of the project's geometry module: Pillow decode
and resize, NumPy crop/pad/normalise, each rule written from its reference's own code."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def decode_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def torchvision_resize_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """torchvision's ``Resize(shorter)`` output (width, height), from
    ``transforms.functional._compute_resized_output_size``: ``new_short, new_long = size,
    int(size * long / short)`` (truncated)."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shorter, int(shorter * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def torchvision_crop_start(width: int, height: int, crop: int) -> tuple[int, int]:
    """torchvision's ``CenterCrop(crop)`` (left, top): ``int(round((image - crop) / 2.0))``, Python's round."""
    return int(round((width - crop) / 2.0)), int(round((height - crop) / 2.0))


def shorter_crop_rgb(data: bytes, resize_shorter: int = 256, crop: int = 224) -> np.ndarray:
    """UINT8 [crop, crop, 3]: torchvision's Resize(shorter) (Pillow bilinear, antialiased) + CenterCrop."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    new_w, new_h = torchvision_resize_size(image.size[0], image.size[1], resize_shorter)
    image = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = torchvision_crop_start(new_w, new_h, crop)
    return np.asarray(image.crop((left, top, left + crop, top + crop)))


def normalise_chw(rgb: np.ndarray, mean=MEAN, std=STD) -> np.ndarray:
    pixels = rgb.astype(np.float32) / 255.0
    return ((pixels - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).transpose(2, 0, 1)


def classification_input(data: bytes, resize_shorter: int = 256, crop: int = 224) -> np.ndarray:
    """FP32 [3, crop, crop]: torchvision's ``Resize(256)`` + ``CenterCrop(224)`` + ImageNet mean/std."""
    return normalise_chw(shorter_crop_rgb(data, resize_shorter, crop))


def stretch_rgb(data: bytes, size: tuple[int, int], *, antialias: bool = True) -> np.ndarray:
    """UINT8 [H, W, 3]: the whole image resized to ``size`` (height, width), aspect not kept.

    Pillow's BILINEAR filters when shrinking (antialiased); without antialiasing, OpenCV's
    INTER_LINEAR (two-tap, pixel centres aligned) is the reference.
    """
    if antialias:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        return np.asarray(image.resize((size[1], size[0]), Image.BILINEAR))
    import cv2

    return cv2.resize(decode_rgb(data), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def letterbox_rgb(data: bytes, size: tuple[int, int], *, centre: bool, fill: int) -> tuple[np.ndarray, tuple[int, int]]:
    """UINT8 [H, W, 3] and the resized (h, w): scale min(H / h0, W / w0), each side rounded half up
    (``floor(side * scale + 0.5)``), placed top-left or centred (offset ``(canvas - side) // 2``)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = image.size
    scale = min(size[0] / height, size[1] / width)
    new_h = min(size[0], max(1, math.floor(height * scale + 0.5)))
    new_w = min(size[1], max(1, math.floor(width * scale + 0.5)))
    resized = np.asarray(image.resize((new_w, new_h), Image.BILINEAR))
    canvas = np.full((size[0], size[1], 3), fill, dtype=np.uint8)
    top, left = ((size[0] - new_h) // 2, (size[1] - new_w) // 2) if centre else (0, 0)
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, (new_h, new_w)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
