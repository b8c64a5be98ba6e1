"""Independent references for the model-spec formats (never triton_vision_models or modelgen code):
the placement of each resize rule written from its definition, boxes mapped forward and back by it, a
per-pixel mask mapping in exact fractions, Pillow/NumPy preprocessing, the tf-od box conversion, the
YOLO decode and a greedy class-wise NMS in NumPy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import Image

from tests.support import reference


def decode(data: bytes) -> np.ndarray:
    """RGB uint8 [H, W, 3], decoded by Pillow."""
    return reference.decode_rgb(data)


# -- reference placement of each rule (from the rules' definitions, not triton_vision_models.geometry) --
@dataclass(frozen=True)
class RefPlacement:
    """Original (H0, W0); the resized image (h1, w1); where its top-left lands (oy, ox); the network (H, W)."""

    original: tuple[int, int]
    resized: tuple[int, int]
    offset: tuple[int, int]
    network: tuple[int, int]


def ref_placement(
    rule: str,
    original: tuple[int, int],
    size: tuple[int, int] | None = None,
    *,
    shorter: int = 0,
    centre: bool = True,
    min_size: float = 0,
    max_size: float = 0,
    size_divisible: int = 1,
) -> RefPlacement:
    h0, w0 = original
    if rule == "stretch":
        assert size is not None
        return RefPlacement(original, size, (0, 0), size)
    if rule == "letterbox":
        assert size is not None
        scale = min(size[0] / h0, size[1] / w0)
        h1 = min(size[0], max(1, math.floor(h0 * scale + 0.5)))
        w1 = min(size[1], max(1, math.floor(w0 * scale + 0.5)))
        offset = ((size[0] - h1) // 2, (size[1] - w1) // 2) if centre else (0, 0)
        return RefPlacement(original, (h1, w1), offset, size)
    if rule == "shorter-crop":
        assert size is not None
        w1, h1 = reference.torchvision_resize_size(w0, h0, shorter)
        left = int(round((w1 - size[1]) / 2.0))
        top = int(round((h1 - size[0]) / 2.0))
        return RefPlacement(original, (h1, w1), (-top, -left), size)
    if rule == "keep-aspect":
        scale = min(min_size / min(h0, w0), max_size / max(h0, w0))
        resized = (math.floor(h0 * scale), math.floor(w0 * scale))
        padded = (math.ceil(resized[0] / size_divisible), math.ceil(resized[1] / size_divisible))
        return RefPlacement(original, resized, (0, 0), (padded[0] * size_divisible, padded[1] * size_divisible))
    raise ValueError(rule)


def ref_placement_of(preprocess: dict, original: tuple[int, int]) -> RefPlacement:
    """:func:`ref_placement` of a spec's ``[preprocess]`` table (as a dict)."""
    return ref_placement(
        preprocess["resize"],
        original,
        tuple(preprocess["size"]) if "size" in preprocess else None,
        shorter=preprocess.get("shorter", 0),
        centre=preprocess.get("pad", "center") == "center",
        min_size=preprocess.get("min_size", 0),
        max_size=preprocess.get("max_size", 0),
        size_divisible=preprocess.get("size_divisible", 1),
    )


def ref_network_box(box, p: RefPlacement) -> np.ndarray:
    """Forward: an original-pixel box x1, y1, x2, y2 -> where it lands in the network input."""
    x1, y1, x2, y2 = box
    sy, sx = p.resized[0] / p.original[0], p.resized[1] / p.original[1]
    oy, ox = p.offset
    return np.array([x1 * sx + ox, y1 * sy + oy, x2 * sx + ox, y2 * sy + oy], dtype=np.float64)


def ref_original_boxes(boxes: np.ndarray, p: RefPlacement) -> np.ndarray:
    """Inverse: network-input boxes -> original pixels, clipped to the image."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sy, sx = p.original[0] / p.resized[0], p.original[1] / p.resized[1]
    oy, ox = p.offset
    out = np.empty_like(boxes)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        out[i] = [(x1 - ox) * sx, (y1 - oy) * sy, (x2 - ox) * sx, (y2 - oy) * sy]
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, p.original[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, p.original[0])
    return out


def ref_mask_to_original(labels: np.ndarray, p: RefPlacement, void: int = 255) -> np.ndarray:
    """A per-pixel loop, exact fractions: original pixel (i, j)'s centre lands in the network input at
    ((i + 1/2) h1 / H0 + oy, ...); outside the part of the network input that shows the image it is
    ``void``, else it takes the label of the model-output pixel (of any resolution) holding that point."""
    h0, w0 = p.original
    out_h, out_w = labels.shape
    net_h, net_w = p.network
    mask = np.empty((h0, w0), dtype=np.uint8)

    def network_coordinate(index: int, original: int, resized: int, offset: int) -> Fraction:
        return (index + Fraction(1, 2)) * resized / original + offset

    for i in range(h0):
        y = network_coordinate(i, h0, p.resized[0], p.offset[0])
        for j in range(w0):
            x = network_coordinate(j, w0, p.resized[1], p.offset[1])
            inside = 0 <= y < net_h and 0 <= x < net_w
            inside = inside and p.offset[0] <= y < p.offset[0] + p.resized[0]
            inside = inside and p.offset[1] <= x < p.offset[1] + p.resized[1]
            if not inside:
                mask[i, j] = void
                continue
            mask[i, j] = labels[math.floor(y * out_h / net_h), math.floor(x * out_w / net_w)]
    return mask


def ref_mask_fast(labels: np.ndarray, p: RefPlacement, void: int = 255) -> np.ndarray:
    """:func:`ref_mask_to_original` per row and per column (the mapping is separable), for large images."""
    axes = []
    for index in range(2):
        original, resized, offset = p.original[index], p.resized[index], p.offset[index]
        coords = [(k + Fraction(1, 2)) * resized / original + offset for k in range(original)]
        inside = np.array([max(0, offset) <= c < min(p.network[index], offset + resized) for c in coords])
        cells = np.array(
            [min(math.floor(c * labels.shape[index] / p.network[index]), labels.shape[index] - 1) for c in coords]
        ).clip(0)
        axes.append((cells, inside))
    (rows, row_in), (cols, col_in) = axes
    mask = labels[rows[:, None], cols[None, :]].astype(np.uint8)
    mask[~(row_in[:, None] & col_in[None, :])] = void
    return mask


# -- reference preprocessing (Pillow / NumPy) ---------------------------------------------------------
def pillow_resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow bilinear (antialiased when shrinking), to (height, width)."""
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.BILINEAR))


def ref_network_rgb(rgb: np.ndarray, p: RefPlacement, fill: float, *, antialias: bool = True) -> np.ndarray:
    """Float [H, W, 3] in pixel units: the resized image placed by ``p``, ``fill`` where it is not."""
    resized: np.ndarray
    if antialias:
        resized = pillow_resize(rgb, p.resized).astype(np.float32)
    else:  # two-tap bilinear on float pixels, centres aligned (torchvision's antialias=False)
        import cv2

        resized = cv2.resize(rgb.astype(np.float32), (p.resized[1], p.resized[0]), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((*p.network, 3), fill, dtype=np.float32)
    oy, ox = p.offset
    for y in range(p.network[0]):
        src_y = y - oy
        if 0 <= src_y < p.resized[0]:
            left, right = max(0, ox), min(p.network[1], ox + p.resized[1])
            canvas[y, left:right] = resized[src_y, left - ox : right - ox]
    return canvas


def normalise(pixels: np.ndarray, mean, std) -> np.ndarray:
    return ((pixels / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


# -- reference decoding -----------------------------------------------------------------------------
def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two x1, y1, x2, y2 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> list[int]:
    """Class-wise greedy NMS: best first (ties: the lower index first); a box is suppressed by a kept box of
    its own class whose IoU with it is above ``iou_threshold`` (an IoU exactly at the threshold is kept)."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept: list[int] = []
    for i in order:
        if all(classes[k] != classes[i] or iou(boxes[k], boxes[i]) <= iou_threshold for k in kept):
            kept.append(i)
    return kept


def ref_yolo(predictions: np.ndarray, threshold: float, iou_threshold: float, max_detections: int):
    """[4 + C, N] -> boxes x1 y1 x2 y2 (network px), scores, class ids: threshold, class-wise NMS, cut."""
    rows = np.asarray(predictions, dtype=np.float64).T
    classes = rows[:, 4:].argmax(axis=1)
    scores = rows[np.arange(len(rows)), 4 + classes]
    boxes = np.stack(
        [
            rows[:, 0] - rows[:, 2] / 2,
            rows[:, 1] - rows[:, 3] / 2,
            rows[:, 0] + rows[:, 2] / 2,
            rows[:, 1] + rows[:, 3] / 2,
        ],
        axis=1,
    )
    candidates = [i for i in range(len(rows)) if scores[i] >= threshold]
    kept = greedy_nms(boxes[candidates], scores[candidates], classes[candidates], iou_threshold)[:max_detections]
    chosen = [candidates[k] for k in kept]
    return boxes[chosen], scores[chosen], classes[chosen]


def ref_tfod_boxes(normalised: np.ndarray, network: tuple[int, int]) -> np.ndarray:
    """ymin, xmin, ymax, xmax in 0..1 of the network input -> x1, y1, x2, y2 in its pixels."""
    height, width = network
    return np.array([[x1 * width, y1 * height, x2 * width, y2 * height] for y1, x1, y2, x2 in normalised])


def ref_threshold(scores: np.ndarray, threshold: float, max_detections: int) -> list[int]:
    """Indices of the scores at or above ``threshold``, best first (ties keep their order), at most N."""
    order = sorted((i for i in range(len(scores)) if scores[i] >= threshold), key=lambda i: (-float(scores[i]), i))
    return order[:max_detections]
