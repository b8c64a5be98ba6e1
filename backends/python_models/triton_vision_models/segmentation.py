"""Segmentation post-processing: class ids at the original size, fractions, overlay (pure NumPy).

Config parameters (``triton-vision add-model`` writes them from the ensemble spec): ``labels`` (one line per
class id), ``format`` (what the model outputs per image: ``logits-nchw`` [C, h, w],
``logits-nhwc`` [h, w, C], or ``class-map`` [h, w] class ids), and the preprocessing's resize rule
(``resize``, ``size``, ``pad``, ...; see :mod:`.geometry`). The output may have another resolution
than the network input (e.g. a stride-8 head); it is taken to cover the network input.

1. the class of each output pixel (argmax over the classes, only where the image is, not padding);
2. the class map is brought back to the original height and width by nearest neighbour with pixel
   centres aligned (:func:`geometry.mask_to_original`): original row ``i`` (centre ``i + 0.5``)
   reads the resized row ``floor((i + 0.5) * h / H)``, moved by the image's place in the network
   input. Labels, not logits, are resized: 21 float logits at 4000x3000 are ~1 GB and seconds of
   interpolation, the uint8 label map is 12 MB and one gather. Pixels the network never saw (cut
   away by a centre crop) are 255 (void); CLASS_FRACTIONS then sum to less than 1.

OpenCV is imported only to draw an overlay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import triton_vision_contract as contract

from . import geometry
from . import tensors as t
from .errors import ConfigError, InferenceError, InvalidInputError
from .labels import labels_of
from .model_config import ModelConfig, RequestData
from .parameters import bool_parameter, refuse_unknown

LOGITS_NCHW = "logits-nchw"
LOGITS_NHWC = "logits-nhwc"
CLASS_MAP = "class-map"
FORMATS = (LOGITS_NCHW, LOGITS_NHWC, CLASS_MAP)
PARAMETERS = (t.OVERLAY_PARAMETER,)


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


nearest_indices = geometry.nearest_indices


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


def check_sizes(original: np.ndarray, resized: np.ndarray, canvas: Sequence[int] | None) -> None:
    if original.shape != (2,) or resized.shape != (2,):
        raise InvalidInputError(f"sizes must be (height, width), got {original.tolist()} and {resized.tolist()}")
    too_big = canvas is not None and (resized[0] > canvas[0] or resized[1] > canvas[1])
    if min(original) < 1 or min(resized) < 1 or too_big:
        raise InvalidInputError(
            f"sizes out of range: original {original.tolist()}, resized {resized.tolist()}, canvas {list(canvas or ())}"
        )


class SegmentationPostprocessor:
    """Runner: per image the model's output (+ sizes, + encoded image) -> a mask at the original size."""

    def __init__(
        self, labels: Sequence[str], *, format: str = LOGITS_NCHW, rule: geometry.ResizeRule | None = None
    ) -> None:
        if format not in FORMATS:
            raise ConfigError(f"parameter 'format' must be one of {', '.join(FORMATS)}, got '{format}'")
        self.labels = np.array([label.encode("utf-8") for label in labels], dtype=np.object_)
        self.palette = voc_palette()
        self.format = format
        self.rule = rule or geometry.ResizeRule(
            geometry.LETTERBOX, (t.SEGMENTATION_CANVAS, t.SEGMENTATION_CANVAS), pad=geometry.TOP_LEFT
        )

    @classmethod
    def from_config(cls, config: ModelConfig) -> SegmentationPostprocessor:
        labels = labels_of(config)
        fmt = config.setting("format", LOGITS_NCHW)
        if fmt != CLASS_MAP:
            logits = config.input(t.LOGITS)
            classes = logits.dims[0] if fmt == LOGITS_NCHW else logits.dims[-1]
            if logits.dims and classes > 0 and classes != len(labels):
                raise ConfigError(
                    f"model '{config.name}': input '{t.LOGITS}' has {classes} classes, label file has {len(labels)}"
                )
        try:
            return cls(labels, format=fmt, rule=geometry.rule_of(config, default=geometry.LETTERBOX))
        except ConfigError as exc:
            raise ConfigError(f"model '{config.name}': {exc}") from None

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray]]:
        return [self.run_one(request) for request in requests]

    def class_map(self, output: np.ndarray, placement: geometry.Placement) -> np.ndarray:
        """Class ids [h, w] over the output's grid (argmax only where the image is visible)."""
        if self.format == CLASS_MAP:
            ids = output.reshape(output.shape[-2:]) if output.ndim == 3 else output
            if ids.ndim != 2:
                raise InvalidInputError(f"'{t.CLASS_MAP}' must be [height, width] class ids, got {list(output.shape)}")
            return np.rint(ids).astype(np.int64) if ids.dtype.kind == "f" else ids
        logits = output if self.format == LOGITS_NCHW else np.moveaxis(output, -1, 0)
        if logits.ndim != 3 or logits.shape[0] != len(self.labels):
            raise InvalidInputError(
                f"'{t.LOGITS}' must have {len(self.labels)} classes ({self.format}), got {list(output.shape)}"
            )
        height, width = logits.shape[1:]
        (y0, y1), (x0, x1) = placement.visible
        net_h, net_w = placement.network
        top, bottom = (y0 * height) // net_h, -((-y1 * height) // net_h)
        left, right = (x0 * width) // net_w, -((-x1 * width) // net_w)
        ids = np.zeros((height, width), dtype=np.int64)
        ids[top:bottom, left:right] = np.argmax(logits[:, top:bottom, left:right], axis=0)
        return ids

    def padded_canvas(self, placement: geometry.Placement, output: np.ndarray) -> geometry.Placement:
        """keep-aspect: each image sits at the top-left of a batch padded to its largest image (which
        may be another request's), and the output covers that canvas; its size is the output's own, so
        the output must have the network input's resolution."""
        spatial = output.shape[:2] if self.format == LOGITS_NHWC else output.shape[-2:]
        canvas = (int(spatial[0]), int(spatial[1]))
        if canvas[0] < placement.resized[0] or canvas[1] < placement.resized[1]:
            raise InvalidInputError(
                f"resize 'keep-aspect': the model's output {list(canvas)} is smaller than the image's resized "
                f"size {list(placement.resized)}; keep-aspect needs an output at the input's resolution"
            )
        return geometry.Placement(placement.original, placement.resized, (0, 0), canvas)

    def run_one(self, request: RequestData) -> dict[str, np.ndarray]:
        refuse_unknown(request.parameters, PARAMETERS)
        want_overlay = parse_overlay(request.parameters)
        outputs = request.inputs[t.CLASS_MAP if self.format == CLASS_MAP else t.LOGITS]
        originals = request.inputs[t.ORIGINAL_SIZE]
        resized = request.inputs[t.RESIZED_SIZE]
        images = request.inputs.get(t.IMAGE)
        masks, fractions, overlays = [], [], []
        canvas = self.rule.size if self.rule.mode in (geometry.LETTERBOX, geometry.STRETCH) else None
        for index in range(outputs.shape[0]):
            check_sizes(originals[index], resized[index], canvas)
            original_hw = (int(originals[index][0]), int(originals[index][1]))
            placement = self.rule.placement(original_hw, (int(resized[index][0]), int(resized[index][1])))
            if self.rule.mode == geometry.KEEP_ASPECT:
                placement = self.padded_canvas(placement, outputs[index])
            ids = self.class_map(outputs[index], placement)
            if ids.size and (ids.min() < 0 or ids.max() >= len(self.labels)):
                raise InferenceError(
                    f"class ids must be in 0..{len(self.labels) - 1}, got {int(ids.min())}..{int(ids.max())}"
                )
            mask = geometry.mask_to_original(ids, placement, t.MASK_PAD)
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
