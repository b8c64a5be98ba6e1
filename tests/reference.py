"""Reference preprocessing, independent of DALI: Pillow decode and resize, NumPy crop/normalise."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def decode_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def classification_input(data: bytes, resize_shorter: int = 256, crop: int = 224) -> np.ndarray:
    """FP32 [3, crop, crop]: shorter side to 256 (bilinear, antialiased), centre crop, mean/std.

    The crop's start is rounded half up ((341 - 224) / 2 = 58.5 -> 59), as DALI's
    crop_pos 0.5 does; torchvision's CenterCrop rounds half to even (58), one pixel apart.
    """
    image = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = image.size
    scale = resize_shorter / min(width, height)
    new_w, new_h = round(width * scale), round(height * scale)
    image = image.resize((new_w, new_h), Image.BILINEAR)
    left = int(np.floor((new_w - crop) / 2 + 0.5))
    top = int(np.floor((new_h - crop) / 2 + 0.5))
    pixels = np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255.0
    return ((pixels - MEAN) / STD).transpose(2, 0, 1)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
