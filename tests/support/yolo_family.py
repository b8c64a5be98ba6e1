"""Tiny detectors with the published tensor contracts of YOLOv5 and YOLOX, the specs that serve them,
and their references written from the libraries' documented rules.

Both find the red and the blue block of their input with the colour rule of
``tests/support/format_models.py`` (a wrong resize, padding or colour order moves or loses a box):

- :func:`yolov5_detector`: YOLOv5's ``output0`` [B, N, 5 + 2]: centre x, y, width, height in input
  pixels, objectness, class probabilities (RGB 0..1 input, centred letterbox of grey 114), the rows of
  :data:`YOLOV5_ROWS`;
- :func:`yolox_detector`: YOLOX's raw grid ``output`` [B, N, 5 + 2] (``decode_in_inference`` off),
  one row per cell of the stride 8/16/32 grids, BGR 0..255 input letterboxed top-left with 114: every
  row scores 0 except :data:`YOLOX_ROWS`, whose raw values encode the colour boxes at their cells
  (x = cx / stride - grid_x, w = log(w / stride)).

References: :func:`yolov5_reference` (Ultralytics YOLOv5's ``letterbox`` and ``non_max_suppression``) and
:func:`yolox_reference` (YOLOX's ``preproc``, ``demo_postprocess`` and ``multiclass_nms``).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper

from tests.support.format_models import Graph, _colour_boxes
from tests.support.format_references import greedy_nms

LABELS = ("red", "blue")
# (objectness, class 0, class 1, box) per YOLOv5 row: "red+2" is the red box grown by 2 pixels (scores
# 0.72: suppressed by the red box at 0.855); the fourth row's class probability 0.99 is only 0.198 as a
# score (objectness 0.2): below the threshold, it shows whether objectness multiplies.
YOLOV5_ROWS = (
    (0.95, 0.9, 0.1, "red"),
    (0.9, 0.8, 0.1, "red+2"),
    (0.9, 0.05, 0.95, "blue"),
    (0.2, 0.99, 0.0, "blue"),
    (0.5, 0.2, 0.1, "red"),
)
# (row index, objectness, class 0, class 1, box) per YOLOX row with a score; for a 64x96 input the grids
# have 8x12, 4x6 and 2x3 cells (rows 0..95, 96..119, 120..125).
YOLOX_SIZE = (64, 96)
YOLOX_ROWS = (
    (104, 0.95, 0.9, 0.05, "red"),  # stride 16, cell (2, 1)
    (41, 0.9, 0.1, 0.9, "blue"),  # stride 8, cell (5, 3)
    (124, 0.9, 0.8, 0.1, "red+2"),  # stride 32, cell (1, 1): suppressed by row 104
)
STRIDES = (8, 16, 32)


def _cxcywh(g: Graph, box, grow: float) -> list[str]:
    x1, y1, x2, y2 = box
    cx = g.op("Mul", g.op("Add", x1, x2), g.const(0.5))
    cy = g.op("Mul", g.op("Add", y1, y2), g.const(0.5))
    w = g.op("Add", g.op("Sub", x2, x1), g.const(2 * grow))
    h = g.op("Add", g.op("Sub", y2, y1), g.const(2 * grow))
    return [cx, cy, w, h]


def yolov5_detector(height: int, width: int) -> onnx.ModelProto:
    """``images`` float [batch, 3, H, W] (pixel / 255, RGB) -> ``output0`` [batch, 5, 7] (see YOLOV5_ROWS)."""
    g = Graph()
    red, blue = _colour_boxes(g, "images")
    ones = g.op("Add", g.op("Mul", red[0], g.const(0.0)), g.const(1.0))  # [N, 1]
    rows = []
    for objectness, score0, score1, which in YOLOV5_ROWS:
        parts = _cxcywh(g, red if which.startswith("red") else blue, 2.0 if which.endswith("+2") else 0.0)
        parts += [g.op("Mul", ones, g.const(v)) for v in (objectness, score0, score1)]
        rows.append(g.op("Unsqueeze", g.op("Concat", *parts, axis=1), g.const([1], np.int64)))  # [N, 1, 7]
    g.op("Concat", *rows, axis=1, out="output0")
    return g.model(
        "tiny_yolov5",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", len(YOLOV5_ROWS), 7])],
    )


def grid_cells(height: int, width: int) -> list[tuple[int, int, int]]:
    """(stride, grid x, grid y) of every row, in YOLOX's order."""
    return [(s, x, y) for s in STRIDES for y in range(height // s) for x in range(width // s)]


def yolox_detector() -> onnx.ModelProto:
    """``images`` float [batch, 3, 64, 96] (BGR 0..255) -> ``output`` [batch, 126, 7] (see YOLOX_ROWS)."""
    height, width = YOLOX_SIZE
    cells = grid_cells(height, width)
    g = Graph()
    b, gr, r = g.split3("images", axis=1)
    rgb01 = g.op("Div", g.op("Concat", r, gr, b, axis=1), g.const(255.0))
    red, blue = _colour_boxes(g, rgb01)
    ones = g.op("Add", g.op("Mul", red[0], g.const(0.0)), g.const(1.0))  # [N, 1]
    zeros3 = g.op("Unsqueeze", g.op("Mul", ones, g.const(0.0)), g.const([2], np.int64))  # [N, 1, 1]
    segments, at = [], 0
    for index, objectness, score0, score1, which in sorted(YOLOX_ROWS):
        if index > at:  # rows without a detection: all zero (objectness 0)
            segments.append(g.op("Add", zeros3, g.const(np.zeros((1, index - at, 7), np.float32))))
        stride, gx, gy = cells[index]
        cx, cy, w, h = _cxcywh(g, red if which.startswith("red") else blue, 2.0 if which.endswith("+2") else 0.0)
        raw = [
            g.op("Sub", g.op("Div", cx, g.const(float(stride))), g.const(float(gx))),
            g.op("Sub", g.op("Div", cy, g.const(float(stride))), g.const(float(gy))),
            g.op("Log", g.op("Div", w, g.const(float(stride)))),
            g.op("Log", g.op("Div", h, g.const(float(stride)))),
            *(g.op("Mul", ones, g.const(v)) for v in (objectness, score0, score1)),
        ]
        segments.append(g.op("Unsqueeze", g.op("Concat", *raw, axis=1), g.const([1], np.int64)))
        at = index + 1
    if at < len(cells):
        segments.append(g.op("Add", zeros3, g.const(np.zeros((1, len(cells) - at, 7), np.float32))))
    g.op("Concat", *segments, axis=1, out="output")
    return g.model(
        "tiny_yolox",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, height, width])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", len(cells), 7])],
    )


# name -> (model, preprocess, postprocess) of the two specs.
SPECS: dict[str, tuple[Any, dict, dict]] = {
    "v5": (
        lambda: yolov5_detector(64, 96),
        {"resize": "letterbox", "size": [64, 96], "pad": "center", "fill": 114, "antialias": False},
        {"format": "yolov5", "score_threshold": 0.25},
    ),
    "yx": (
        yolox_detector,
        {
            "resize": "letterbox",
            "size": list(YOLOX_SIZE),
            "pad": "top-left",
            "fill": 114,
            "channels": "BGR",
            "pixel_mean": [0, 0, 0],
            "antialias": False,
        },
        {"format": "yolox", "score_threshold": 0.25},
    ),
}


# -- the references, from the libraries' own code ----------------------------------------------------
def yolov5_letterbox(rgb: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, tuple[float, float]]:
    """YOLOv5's ``utils/augmentations.letterbox`` (auto=False): ratio ``min(H/h, W/w)``, unpadded size
    ``round(side * r)``, padding split in two (``round(d - 0.1)`` before, ``round(d + 0.1)`` after),
    ``cv2.resize`` INTER_LINEAR, border 114; the ratio and the (left, top) padding."""
    h0, w0 = rgb.shape[:2]
    r = min(size[0] / h0, size[1] / w0)
    new_w, new_h = int(round(w0 * r)), int(round(h0 * r))
    dw, dh = (size[1] - new_w) / 2, (size[0] - new_h) / 2
    if (w0, h0) != (new_w, new_h):
        rgb = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    padded = cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return padded, r, (dw, dh)


def yolov5_reference(model: onnx.ModelProto, rgb: np.ndarray, threshold: float = 0.25, iou_threshold: float = 0.45):
    """Boxes (original pixels), scores, class ids: YOLOv5's ``detect.py`` on ``rgb``: letterbox, /255,
    ``non_max_suppression`` (candidates with objectness > threshold; score = objectness x class
    probability, the best class > threshold; class-wise NMS), ``scale_boxes`` (minus the padding, over
    the ratio, clipped)."""
    import onnxruntime as ort

    padded, r, (dw, dh) = yolov5_letterbox(rgb, (64, 96))
    pixels = (padded.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (prediction,) = session.run(None, {"images": pixels})
    x = prediction[0]
    x = x[x[:, 4] > threshold]
    scores_all = x[:, 5:] * x[:, 4:5]
    classes = scores_all.argmax(1)
    scores = scores_all[np.arange(len(x)), classes]
    keep = scores > threshold
    x, scores, classes = x[keep], scores[keep], classes[keep]
    boxes = np.stack([x[:, 0] - x[:, 2] / 2, x[:, 1] - x[:, 3] / 2, x[:, 0] + x[:, 2] / 2, x[:, 1] + x[:, 3] / 2], 1)
    chosen = greedy_nms(boxes, scores, classes, iou_threshold)
    boxes = boxes[chosen] - np.array([dw, dh, dw, dh])
    boxes /= r
    h0, w0 = rgb.shape[:2]
    boxes = np.clip(boxes, 0, [w0, h0, w0, h0])
    return boxes, scores[chosen], classes[chosen], 1 / r


def yolox_reference(model: onnx.ModelProto, rgb: np.ndarray, threshold: float = 0.25, iou_threshold: float = 0.45):
    """YOLOX's ``tools/demo`` ONNX path: ``preproc`` (BGR, ``cv2.resize`` to ``int(side * r)``
    INTER_LINEAR, top-left on 114, float 0..255), ``demo_postprocess`` (grids), score = objectness x
    class, ``multiclass_nms`` (class-wise), boxes / r; clipped here to the image as the wire contract
    does."""
    import onnxruntime as ort

    bgr = rgb[:, :, ::-1]
    size = YOLOX_SIZE
    r = min(size[0] / bgr.shape[0], size[1] / bgr.shape[1])
    resized = cv2.resize(bgr, (int(bgr.shape[1] * r), int(bgr.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
    padded = np.full((size[0], size[1], 3), 114, np.uint8)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    pixels = padded.transpose(2, 0, 1)[None].astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (outputs,) = session.run(None, {"images": pixels})
    cells = grid_cells(*size)
    out = outputs[0].copy()
    for row, (stride, gx, gy) in enumerate(cells):
        out[row, 0] = (out[row, 0] + gx) * stride
        out[row, 1] = (out[row, 1] + gy) * stride
        out[row, 2] = math.exp(out[row, 2]) * stride
        out[row, 3] = math.exp(out[row, 3]) * stride
    scores_all = out[:, 4:5] * out[:, 5:]
    classes = scores_all.argmax(1)
    scores = scores_all[np.arange(len(out)), classes]
    keep = scores > threshold
    out, scores, classes = out[keep], scores[keep], classes[keep]
    boxes = np.stack(
        [out[:, 0] - out[:, 2] / 2, out[:, 1] - out[:, 3] / 2, out[:, 0] + out[:, 2] / 2, out[:, 1] + out[:, 3] / 2], 1
    )
    chosen = greedy_nms(boxes, scores, classes, iou_threshold)
    h0, w0 = rgb.shape[:2]
    boxes = np.clip(boxes[chosen] / r, 0, [w0, h0, w0, h0])
    return boxes, scores[chosen], classes[chosen], 1 / r
