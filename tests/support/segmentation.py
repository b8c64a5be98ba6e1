"""Segmentation test helpers: a known-answer FCN stand-in, synthetic images, OpenCV references."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from triton_vision_models import tensors as t

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
PERSON, CAT, BACKGROUND = 15, 8, 0
GRAY, RED, GREEN = (128, 128, 128), (230, 20, 20), (20, 230, 20)
# Colour rule of the stand-in, on RGB in 0..1: "person" where red leads the other channels by
# more than THRESHOLD, "cat" where green does, background elsewhere (the mean-valued padding too).
THRESHOLD = 0.4


def colour_rule_fcn() -> onnx.ModelProto:
    """The fcn-resnet50-11 tensor signature; logits from a colour rule on the (normalised) input pixels."""
    init = [
        numpy_helper.from_array(STD.reshape(1, 3, 1, 1), "std"),
        numpy_helper.from_array(MEAN.reshape(1, 3, 1, 1), "mean"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(THRESHOLD, np.float32), "threshold"),
        numpy_helper.from_array(np.array(-10.0, np.float32), "low"),
        numpy_helper.from_array(np.array([1, 1, 1], np.int64), "split"),
    ]
    nodes = [
        helper.make_node("Mul", [t.SEGMENTER_INPUT, "std"], ["scaled"]),
        helper.make_node("Add", ["scaled", "mean"], ["rgb"]),
        helper.make_node("Split", ["rgb", "split"], ["r", "g", "b"], axis=1),
        helper.make_node("Max", ["g", "b"], ["max_gb"]),
        helper.make_node("Max", ["r", "b"], ["max_rb"]),
        helper.make_node("Sub", ["r", "max_gb"], ["person"]),
        helper.make_node("Sub", ["g", "max_rb"], ["cat"]),
        helper.make_node("Mul", ["r", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "threshold"], ["background"]),
        helper.make_node("Add", ["zeros", "low"], ["other"]),
    ]
    channels = ["other"] * t.VOC_CLASSES
    channels[BACKGROUND], channels[CAT], channels[PERSON] = "background", "cat", "person"
    nodes += [
        helper.make_node("Concat", channels, [t.SEGMENTER_OUTPUT], axis=1),
        helper.make_node("Identity", [t.SEGMENTER_OUTPUT], [t.SEGMENTER_AUX]),
    ]
    graph = helper.make_graph(
        nodes,
        "colour_rule_fcn",
        [helper.make_tensor_value_info(t.SEGMENTER_INPUT, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", t.VOC_CLASSES, "H", "W"])
            for name in (t.SEGMENTER_OUTPUT, t.SEGMENTER_AUX)
        ],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def synthetic(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB image with a red and a green rectangle on gray, and its expected class-id mask.

    Rectangles are placed at fractions of the size, off-centre and not square, so that a
    transposed or flipped answer differs.
    """
    image = np.full((height, width, 3), GRAY, dtype=np.uint8)
    expected = np.zeros((height, width), dtype=np.uint8)
    for colour, label, (y0, y1, x0, x1) in (
        (RED, PERSON, (0.10, 0.35, 0.15, 0.45)),
        (GREEN, CAT, (0.50, 0.90, 0.55, 0.85)),
        (RED, PERSON, (0.70, 0.80, 0.05, 0.20)),
    ):
        rows = slice(int(y0 * height), int(y1 * height))
        cols = slice(int(x0 * width), int(x1 * width))
        image[rows, cols] = colour
        expected[rows, cols] = label
    return image, expected


def png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def near_edges(expected: np.ndarray, band: int) -> np.ndarray:
    """True within ``band`` pixels of a label change of ``expected`` (where resampling blurs)."""
    edges = np.zeros(expected.shape, dtype=bool)
    edges[1:, :] |= expected[1:, :] != expected[:-1, :]
    edges[:-1, :] |= expected[1:, :] != expected[:-1, :]
    edges[:, 1:] |= expected[:, 1:] != expected[:, :-1]
    edges[:, :-1] |= expected[:, 1:] != expected[:, :-1]
    kernel = np.ones((2 * band - 1, 2 * band - 1), np.uint8) if band > 1 else np.ones((1, 1), np.uint8)
    return cv2.dilate(edges.astype(np.uint8), kernel).astype(bool)


def mismatches_away_from_edges(mask: np.ndarray, expected: np.ndarray, band: int = 2) -> int:
    """Pixels more than ``band - 1`` pixels from every edge where ``mask`` disagrees."""
    if mask.shape != expected.shape:
        return expected.size
    return int(np.count_nonzero((mask != expected) & ~near_edges(expected, band)))


def region_offsets(mask: np.ndarray, expected: np.ndarray) -> list[tuple[float, float]]:
    """Per class present in ``expected`` (not background): centroid of mask minus expected (rows, cols)."""
    offsets = []
    for label in np.unique(expected):
        if label == BACKGROUND:
            continue
        got = np.argwhere(mask == label).mean(axis=0)
        want = np.argwhere(expected == label).mean(axis=0)
        offsets.append((float(got[0] - want[0]), float(got[1] - want[1])))
    return offsets


def letterbox_size(height: int, width: int, canvas: int = t.SEGMENTATION_CANVAS) -> tuple[int, int]:
    """The resized (height, width): longer side to ``canvas``, each side rounded half up."""
    scale = canvas / max(height, width)
    return max(1, int(np.floor(height * scale + 0.5))), max(1, int(np.floor(width * scale + 0.5)))


def reference_input(
    data: bytes, canvas: int = t.SEGMENTATION_CANVAS
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """OpenCV/NumPy letterbox: FP32 [3, canvas, canvas], original (H, W), resized (h, w)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    h, w = letterbox_size(height, width, canvas)
    shrinking = h < height or w < width
    resized = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    pixels = np.zeros((canvas, canvas, 3), dtype=np.float32)
    pixels[:h, :w] = (resized.astype(np.float32) / 255.0 - MEAN) / STD
    return pixels.transpose(2, 0, 1), (height, width), (h, w)


def reference_mask(logits: np.ndarray, original: tuple[int, int], resized: tuple[int, int]) -> np.ndarray:
    """Argmax over the unpadded region, then Pillow's pixel-centre nearest neighbour to the original size."""
    from PIL import Image

    labels = logits[:, : resized[0], : resized[1]].argmax(axis=0).astype(np.uint8)
    return np.asarray(Image.fromarray(labels).resize((original[1], original[0]), Image.NEAREST))
