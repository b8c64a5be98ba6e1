"""Encoded images on the wire: one per batch element, zero-padded to the longest (pure NumPy)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np


def pack_images(images: Sequence[bytes]) -> np.ndarray:
    """UINT8 [N, longest]: each row one encoded file, zero-padded at the end.

    JPEG and PNG decoders stop at the image's end marker, so the padding is ignored.
    """
    if not images:
        raise ValueError("no images to send")
    for index, data in enumerate(images):
        if not data:
            raise ValueError(f"image {index} is empty (0 bytes)")
    longest = max(len(data) for data in images)
    packed = np.zeros((len(images), longest), dtype=np.uint8)
    for row, data in enumerate(images):
        packed[row, : len(data)] = np.frombuffer(data, dtype=np.uint8)
    return packed


def read_images(paths: Iterable[str | Path]) -> list[bytes]:
    return [Path(path).read_bytes() for path in paths]
