"""Segmentation post-processing: class ids at the original size, fractions, overlay (pure NumPy).

The preprocessing letterboxes each image into a fixed canvas (see
``model_repository/segmentation_preprocess/1/dali.py``): the image, resized with its aspect kept
so that its longer side fills the canvas, sits at the top-left corner; the rest is padding. Here:

1. argmax over the classes, at working resolution, of the unpadded region only;
2. the label map is brought back to the original height and width by nearest neighbour with
   pixel centres aligned: original row ``i`` (centre ``i + 0.5``) reads working row
   ``floor((i + 0.5) * h / H)``, the inverse of the resize's own ``h / H`` scale. Labels, not
   logits, are resized: 21 float logits at 4000x3000 are ~1 GB and seconds of interpolation,
   the uint8 label map is 12 MB and one gather; the boundaries are as precise as the working
   resolution allows either way.

OpenCV is imported only to draw an overlay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import triton_vision_contract as contract

from . import tensors as t
from .errors import ConfigError, InferenceError, InvalidInputError
from .labels import labels_of
from .parameters import bool_parameter
from .spec import ModelSpec, RequestData


def voc_palette(size: int = 256) -> np.ndarray:
    """The Pascal VOC colour map (:func:`triton_vision_contract.voc_palette`), RGB uint8 [size, 3]."""
    return np.array(contract.voc_palette(size), dtype=np.uint8)


def parse_overlay(parameters: Mapping[str, Any]) -> bool:
    """The request's ``overlay`` parameter: a boolean, or the strings "true"/"false" (default false)."""
    return bool_parameter(parameters, t.OVERLAY_PARAMETER, False)


def class_ids(logits: np.ndarray, valid_size: Sequence[int]) -> np.ndarray:
    """UINT8 [h, w]: argmax over the classes of ``logits`` [C, H, W] in its top-left ``h x w``."""
    height, width = int(valid_size[0]), int(valid_size[1])
    return np.argmax(logits[:, :height, :width], axis=0).astype(np.uint8)


def nearest_indices(target: int, source: int) -> np.ndarray:
    """For each of ``target`` pixels, the ``source`` pixel whose area holds its centre.

    ``floor((i + 0.5) * source / target)`` in integers, so no rounding error can move a row.
    """
    i = np.arange(target, dtype=np.int64)
    return np.minimum(((2 * i + 1) * source) // (2 * target), source - 1)


def resize_labels(labels: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """A label map [h, w] brought to ``size`` (H, W) by nearest neighbour, pixel centres aligned."""
    rows = nearest_indices(int(size[0]), labels.shape[0])
    cols = nearest_indices(int(size[1]), labels.shape[1])
    return labels[rows[:, None], cols[None, :]]


def class_fractions(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """FP32 [num_classes]: the fraction of the mask's pixels labelled with each class."""
    counts = np.bincount(mask.ravel(), minlength=num_classes)[:num_classes]
    return (counts / max(mask.size, 1)).astype(np.float32)


def pad_masks(masks: Sequence[np.ndarray], fill: int = t.MASK_PAD) -> np.ndarray:
    """UINT8 [N, max H, max W]: each mask at the top-left, ``fill`` elsewhere."""
    height = max(m.shape[0] for m in masks)
    width = max(m.shape[1] for m in masks)
    padded = np.full((len(masks), height, width), fill, dtype=np.uint8)
    for index, mask in enumerate(masks):
        padded[index, : mask.shape[0], : mask.shape[1]] = mask
    return padded


def blend(image_rgb: np.ndarray, mask: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8: each pixel the rounded mean of the image and its class colour (50/50)."""
    colours = (voc_palette() if palette is None else palette)[mask]
    return ((image_rgb.astype(np.uint16) + colours.astype(np.uint16) + 1) // 2).astype(np.uint8)


def overlay_png(encoded: np.ndarray, mask: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """PNG bytes of the encoded image (UINT8 [-1], zero padding allowed) blended with ``mask``."""
    import cv2

    bgr = cv2.imdecode(np.ascontiguousarray(encoded, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InferenceError("overlay: OpenCV cannot decode the image the preprocessing decoded")
    if bgr.shape[:2] != mask.shape:
        raise InferenceError(
            f"overlay: OpenCV decodes {bgr.shape[1]}x{bgr.shape[0]}, the preprocessing {mask.shape[1]}x{mask.shape[0]}"
        )
    blended = blend(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mask, palette)
    ok, data = cv2.imencode(".png", cv2.cvtColor(blended, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InferenceError("overlay: PNG encoding failed")
    return data.tobytes()


def check_sizes(original: np.ndarray, resized: np.ndarray, canvas: tuple[int, ...]) -> None:
    if original.shape != (2,) or resized.shape != (2,):
        raise InvalidInputError(f"sizes must be (height, width), got {original.tolist()} and {resized.tolist()}")
    if min(original) < 1 or min(resized) < 1 or resized[0] > canvas[0] or resized[1] > canvas[1]:
        raise InvalidInputError(
            f"sizes out of range: original {original.tolist()}, resized {resized.tolist()}, canvas {list(canvas)}"
        )


class SegmentationPostprocessor:
    """Runner: canvas logits [B, 21, S, S] + sizes (+ encoded images) -> masks at the original sizes."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = np.array([label.encode("utf-8") for label in labels], dtype=np.object_)
        self.palette = voc_palette()

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> SegmentationPostprocessor:
        labels = labels_of(spec)
        logits = spec.input(t.LOGITS)
        if logits.dims and logits.dims[0] > 0 and logits.dims[0] != len(labels):
            raise ConfigError(
                f"model '{spec.name}': input '{t.LOGITS}' has {logits.dims[0]} classes, label file has {len(labels)}"
            )
        return cls(labels)

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray]]:
        return [self.run_one(request) for request in requests]

    def run_one(self, request: RequestData) -> dict[str, np.ndarray]:
        want_overlay = parse_overlay(request.parameters)
        logits = request.inputs[t.LOGITS]
        originals = request.inputs[t.ORIGINAL_SIZE]
        resized = request.inputs[t.RESIZED_SIZE]
        images = request.inputs.get(t.IMAGE)
        if logits.shape[1] != len(self.labels):
            raise InvalidInputError(f"'{t.LOGITS}' has {logits.shape[1]} classes, expected {len(self.labels)}")
        masks, fractions, overlays = [], [], []
        for index in range(logits.shape[0]):
            check_sizes(originals[index], resized[index], logits.shape[2:])
            mask = resize_labels(class_ids(logits[index], resized[index]), originals[index])
            masks.append(mask)
            fractions.append(class_fractions(mask, len(self.labels)))
            if want_overlay:
                if images is None:
                    raise InvalidInputError(f"an overlay needs the input '{t.IMAGE}'")
                overlays.append(overlay_png(images[index], mask, self.palette))
            else:
                overlays.append(b"")
        count = len(masks)
        return {
            t.MASK: pad_masks(masks),
            t.MASK_SIZE: np.array([m.shape for m in masks], dtype=np.int32),
            t.CLASS_FRACTIONS: np.stack(fractions),
            t.LABELS: np.tile(self.labels, (count, 1)),
            t.OVERLAY: np.array(overlays, dtype=np.object_).reshape(count, 1),
        }
