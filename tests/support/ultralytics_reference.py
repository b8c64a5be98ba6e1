"""Ultralytics' documented inference rules, written here from their definitions (never the project's
code, never Ultralytics itself, which is not a dependency): LetterBox, NMS, the segment head's masks
(``process_mask``, ``scale_image``), and the matching rules the tests judge served answers by.

- LetterBox: ``r = min(H / h, W / w)``; the image resized to ``(round(w r), round(h r))`` with OpenCV's
  ``INTER_LINEAR`` (no antialiasing), padded with grey 114, ``top = round(dh - 0.1)``, ``left =
  round(dw - 0.1)`` where ``dh, dw`` are half the padding; RGB, pixel / 255, NCHW.
- NMS: candidates whose best class score exceeds ``conf``; boxes ``xywh -> xyxy``; class-wise greedy NMS
  (IoU above ``iou`` suppresses), best first, at most ``max_det``.
- Masks: ``coefficients @ prototypes`` (logits), cropped to the box scaled to the prototypes' grid
  (pixel index ``c`` kept where ``x1 <= c < x2``), upsampled bilinearly (half-pixel centres) to the
  network input, above 0 (sigmoid above 0.5); ``scale_image``: the letterbox's padding cut off, resized
  to the original with ``INTER_LINEAR``, above 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tests.support import reference

FILL = 114


@dataclass(frozen=True)
class Letterbox:
    pixels: np.ndarray  # float32 [1, 3, H, W]
    gain: float
    pad: tuple[int, int]  # (left, top)
    original: tuple[int, int]  # (H0, W0)


def letterbox(rgb: np.ndarray, size: int) -> Letterbox:
    h, w = rgb.shape[:2]
    r = min(size / h, size / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    image = rgb if (new_w, new_h) == (w, h) else cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(FILL, FILL, FILL))
    pixels = (image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    return Letterbox(np.ascontiguousarray(pixels), r, (left, top), (h, w))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def nms(output0: np.ndarray, classes: int, conf: float, iou: float, max_det: int = 300):
    """[4 + classes + M, N] -> (boxes xyxy in network pixels, scores, class ids, the M coefficients)."""
    rows = output0.T.astype(np.float64)
    scores_all = rows[:, 4 : 4 + classes]
    ids = scores_all.argmax(axis=1)
    scores = scores_all[np.arange(len(rows)), ids]
    keep = np.flatnonzero(scores > conf)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    cx, cy, w, h = (rows[keep, i] for i in range(4))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    chosen: list[int] = []
    for index in range(len(keep)):
        if all(ids[keep[j]] != ids[keep[index]] or box_iou(boxes[index], boxes[j]) <= iou for j in chosen):
            chosen.append(index)
        if len(chosen) == max_det:
            break
    picked = keep[chosen]
    return boxes[chosen], scores[picked], ids[picked], rows[picked, 4 + classes :]


def process_mask(prototypes: np.ndarray, coefficients: np.ndarray, boxes: np.ndarray, shape: tuple[int, int]):
    """[n, H, W] bool at the network input's size (Ultralytics' process_mask with upsample)."""
    m, mh, mw = prototypes.shape
    logits = (coefficients @ prototypes.reshape(m, -1).astype(np.float64)).reshape(-1, mh, mw)
    masks = []
    for logit, box in zip(logits, boxes, strict=True):
        x1, y1, x2, y2 = box * np.array([mw / shape[1], mh / shape[0], mw / shape[1], mh / shape[0]])
        c = np.arange(mw)[None, :]
        r = np.arange(mh)[:, None]
        cropped = logit * ((c >= x1) & (c < x2) & (r >= y1) & (r < y2))
        up = cv2.resize(cropped.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        masks.append(up > 0.0)
    return np.array(masks, dtype=bool).reshape(-1, *shape)


def scale_image(mask: np.ndarray, lb: Letterbox) -> np.ndarray:
    """A network-input mask -> the original image's size: padding cut off, resized bilinearly, above 0.5."""
    h0, w0 = lb.original
    left, top = lb.pad
    new_h, new_w = int(round(h0 * lb.gain)), int(round(w0 * lb.gain))
    inner = mask[top : top + new_h, left : left + new_w].astype(np.float32)
    return cv2.resize(inner, (w0, h0), interpolation=cv2.INTER_LINEAR) > 0.5


def scale_boxes(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    left, top = lb.pad
    out = boxes.copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - left) / lb.gain
    out[:, [1, 3]] = (out[:, [1, 3]] - top) / lb.gain
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, lb.original[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, lb.original[0])
    return out


@dataclass(frozen=True)
class Instances:
    boxes: np.ndarray  # [n, 4] original pixels
    scores: np.ndarray
    class_ids: np.ndarray
    masks: np.ndarray  # [n, H0, W0] bool


def segment(model: Path, rgb: np.ndarray, *, conf: float = 0.25, iou: float = 0.45, classes: int = 80) -> Instances:
    """The segment model in-process (ONNX Runtime) under Ultralytics' rules."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    size = session.get_inputs()[0].shape[-1]
    lb = letterbox(rgb, int(size))
    output0, output1 = session.run(None, {session.get_inputs()[0].name: lb.pixels})
    boxes, scores, ids, coefficients = nms(output0[0], classes, conf, iou)
    masks = process_mask(output1[0], coefficients, boxes, (int(size), int(size)))
    originals = np.array([scale_image(m, lb) for m in masks], dtype=bool).reshape(-1, *lb.original)
    return Instances(scale_boxes(boxes, lb), scores, ids, originals)


def paint(masks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The wire contract's rule: k + 1 where mask k covers the pixel and no earlier (better) one does."""
    out = np.zeros(shape, dtype=np.uint16)
    for k in range(len(masks) - 1, -1, -1):
        out[masks[k]] = k + 1
    return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def photo(name: str) -> np.ndarray:
    """RGB uint8 of a shared photo's bytes (Pillow's decode)."""
    return reference.decode_rgb(Path(name).read_bytes())
