"""Known-answer material for the detection tests (independent of the code under test).

- :func:`bright_box_detector`: an ONNX graph with the built-in ``faster_rcnn``'s tensor signature (the
  ONNX model zoo's FasterRCNN-12: ``image`` [3, H, W], no batch dimension) whose one "detection" is the
  bounding box of the bright pixels of its input (BGR minus the mean: the padding, 0, is not bright),
  score 0.99, class 1 (person), in input pixels, x2/y2 exclusive.
- :func:`bright_rectangle_image`: a dark RGB image of any size with a white rectangle at a
  known place, so the right answer in original pixels is known before anything runs.
- :func:`zoo_reference_preprocess`: the model zoo Faster R-CNN's preprocessing from its README (Pillow
  and NumPy), and :func:`torchvision_reference_preprocess`: torchvision's (OpenCV and NumPy).
- :func:`lively_random_state_dict`: a seeded random MobileNetV3 Faster R-CNN state dict whose
  feature scale is repaired so that it gives varied, confident detections (plain random
  weights give none above torchvision's internal 0.05 floor).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# The model zoo Faster R-CNN's README: BGR means subtracted from 0..255 pixels; shorter side 800 (longer at
# most 1333), padded to multiples of 32.
ZOO_MEAN_BGR = (102.9801, 115.9465, 122.7717)
ZOO_MIN_SIZE, ZOO_MAX_SIZE, ZOO_DIVISIBLE = 800, 1333, 32
# A white pixel's blue channel minus its mean is 255 - 103 = 152; the dark background (50..70) gives
# -53..-33, the padding 0. Half-way is the edge of the rectangle.
BRIGHT_THRESHOLD = 50.0
BACKGROUND = 50
STAND_IN_SCORE = 0.99
PERSON = 1


def bright_box_detector() -> onnx.ModelProto:
    """The bounding box of the bright blue-channel pixels of ``image`` [3, H, W] (see module doc): outputs
    ``6379`` boxes [1, 4], ``6381`` labels [1] (1: person), ``6383`` scores [1] (0.99)."""
    const = lambda name, value, dtype=np.float32: numpy_helper.from_array(np.array(value, dtype=dtype), name)  # noqa: E731
    nodes = [
        helper.make_node("Gather", ["image", "zero"], ["blue"], axis=0),  # [H, W]
        helper.make_node("Greater", ["blue", "threshold"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["brightf"], to=TensorProto.FLOAT),
        helper.make_node("Shape", ["image"], ["shape"]),
    ]
    ends = {}
    for a, dim, reduce_axis in (("y", 1, 1), ("x", 2, 0)):
        nodes += [
            # any bright pixel per row (y) or column (x): [H] or [W]
            helper.make_node("ReduceMax", ["brightf"], [f"{a}_any"], axes=[reduce_axis], keepdims=0),
            helper.make_node("Gather", ["shape", f"dim{dim}"], [f"{a}_len"], axis=0),
            helper.make_node("Cast", [f"{a}_len"], [f"{a}_lenf"], to=TensorProto.FLOAT),
            helper.make_node("Range", ["zerof", f"{a}_lenf", "onef"], [f"{a}_idx"]),
            helper.make_node("Greater", [f"{a}_any", "half"], [f"{a}_hit"]),
            helper.make_node("Where", [f"{a}_hit", f"{a}_idx", "big"], [f"{a}_lo_c"]),
            helper.make_node("Where", [f"{a}_hit", f"{a}_idx", "minus_one"], [f"{a}_hi_c"]),
            helper.make_node("ReduceMin", [f"{a}_lo_c"], [f"{a}1"], axes=[0], keepdims=1),  # [1]
            helper.make_node("ReduceMax", [f"{a}_hi_c"], [f"{a}_last"], axes=[0], keepdims=1),
            helper.make_node("Add", [f"{a}_last", "onef"], [f"{a}2"]),  # exclusive edge
        ]
        ends[a] = (f"{a}1", f"{a}2")
    nodes += [
        helper.make_node("Concat", [ends["x"][0], ends["y"][0], ends["x"][1], ends["y"][1]], ["box"], axis=0),
        helper.make_node("Unsqueeze", ["box", "zero1"], ["6379"]),  # [1, 4]
        helper.make_node("Identity", ["label"], ["6381"]),
        helper.make_node("Identity", ["score"], ["6383"]),
    ]
    initializers = [
        const("zero", 0, np.int64),
        const("zero1", [0], np.int64),
        const("dim1", 1, np.int64),
        const("dim2", 2, np.int64),
        const("zerof", 0.0),
        const("onef", 1.0),
        const("half", 0.5),
        const("big", 1e9),
        const("minus_one", -1.0),
        const("threshold", BRIGHT_THRESHOLD),
        const("score", [STAND_IN_SCORE]),
        const("label", [PERSON], np.int64),
    ]
    return zoo_signature_model(nodes, "bright_box_detector", initializers)


def zoo_signature_model(nodes: list, name: str, initializers: list) -> onnx.ModelProto:
    """A checked model of the built-in detector's tensor signature: ``image`` FP32 [3, H, W] in,
    ``6379`` boxes [n, 4], ``6381`` labels INT64 [n], ``6383`` scores [n] out."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [3, "height", "width"])],
        [
            helper.make_tensor_value_info("6379", TensorProto.FLOAT, ["nbox", 4]),
            helper.make_tensor_value_info("6381", TensorProto.INT64, ["nbox"]),
            helper.make_tensor_value_info("6383", TensorProto.FLOAT, ["nbox"]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def empty_detector() -> onnx.ModelProto:
    """The built-in detector's contract answering no detection at all: ``6379`` [0, 4], ``6381`` [0],
    ``6383`` [0] (what the real detector answers for a photo with nothing in it)."""
    const = lambda name, value, dtype=np.float32: numpy_helper.from_array(np.array(value, dtype=dtype), name)  # noqa: E731
    nodes = [
        helper.make_node("ReduceMax", ["image"], ["peak"], keepdims=0),
        helper.make_node("Mul", ["box", "peak"], ["scaled"]),  # [1, 4], reading the input
        helper.make_node("Slice", ["scaled", "zero1", "zero1"], ["6379"]),  # [0, 4]
        helper.make_node("Slice", ["label", "zero1", "zero1"], ["6381"]),
        helper.make_node("Slice", ["score", "zero1", "zero1"], ["6383"]),
    ]
    initializers = [
        const("box", [[1.0, 2.0, 3.0, 4.0]]),
        const("label", [PERSON], np.int64),
        const("score", [STAND_IN_SCORE]),
        const("zero1", [0], np.int64),
    ]
    return zoo_signature_model(nodes, "empty_detector", initializers)


def bright_rectangle_image(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """RGB uint8; pixels x1 <= x < x2, y1 <= y < y2 white, the rest dark grey with a faint gradient."""
    x1, y1, x2, y2 = box
    ramp = (BACKGROUND + np.linspace(0, 20, width)).astype(np.uint8)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = ramp[None, :, None]
    image[y1:y2, x1:x2] = 255
    return image


def encode(rgb: np.ndarray, ext: str, **params) -> bytes:
    import cv2

    flags = [cv2.IMWRITE_JPEG_QUALITY, params.get("quality", 95)] if ext == ".jpg" else []
    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), flags)
    if not ok:
        raise RuntimeError(f"cannot encode {ext}")
    return data.tobytes()


def exif_rotated_jpeg(upright_rgb: np.ndarray, orientation: int = 6) -> bytes:
    """A JPEG whose stored pixels are ``upright_rgb`` turned so that EXIF ``orientation`` rights it.

    Orientation 6 means "rotate 90 degrees clockwise to display": the stored array is the upright
    one turned 90 degrees counter-clockwise.
    """
    import io

    from PIL import Image

    if orientation != 6:
        raise ValueError("only orientation 6 is needed here")
    stored = np.ascontiguousarray(np.rot90(upright_rgb, k=1))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def lively_random_state_dict(path: Path, seed: int = 0) -> Path:
    """Save the state dict described in the module docstring to ``path``."""
    import torch
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    torch.manual_seed(seed)
    model = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91).eval()
    state = model.state_dict()
    for key in state:
        if key.startswith("backbone.fpn.") and key.endswith("weight"):
            state[key] = state[key] * 1e4  # random MobileNetV3 features are ~1e-8; bring them to ~1
    state["roi_heads.box_predictor.cls_score.weight"] = state["roi_heads.box_predictor.cls_score.weight"] * 10
    torch.save(state, str(path))
    return path


def zoo_reference_preprocess(rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The ONNX model zoo Faster R-CNN's preprocessing as its README writes it (Pillow and NumPy; no DALI,
    no OpenCV): ratio = 800 / shorter side, capped so that the longer side is at most 1333 (the README's
    "within [800, 1333]"; maskrcnn-benchmark's MAX_SIZE_TEST), each side int(ratio * side), Pillow's
    bilinear resize, BGR, minus the mean, zeros bottom/right up to multiples of 32. Returns the
    [3, H, W] float32 input and the resized (height, width)."""
    from PIL import Image

    height, width = rgb.shape[:2]
    ratio = min(ZOO_MIN_SIZE / min(height, width), ZOO_MAX_SIZE / max(height, width))
    size = (int(ratio * width), int(ratio * height))  # Pillow's (width, height)
    image = Image.fromarray(rgb).resize(size, Image.BILINEAR)
    bgr = np.array(image)[:, :, [2, 1, 0]].astype(np.float32)
    chw = np.transpose(bgr, [2, 0, 1]) - np.array(ZOO_MEAN_BGR, np.float32)[:, None, None]
    padded_h = int(math.ceil(chw.shape[1] / ZOO_DIVISIBLE) * ZOO_DIVISIBLE)
    padded_w = int(math.ceil(chw.shape[2] / ZOO_DIVISIBLE) * ZOO_DIVISIBLE)
    padded = np.zeros((3, padded_h, padded_w), dtype=np.float32)
    padded[:, : chw.shape[1], : chw.shape[2]] = chw
    return padded, (size[1], size[0])


def torchvision_reference_preprocess(rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """OpenCV/NumPy version of torchvision's Faster R-CNN preprocessing (no DALI involved).

    scale = min(800 / shorter, 1333 / longer); size = floor(side * scale); bilinear on float
    pixels; (x / 255 - mean) / std; NCHW float32. Returns the input and its (height, width).
    """
    import cv2

    height, width = rgb.shape[:2]
    scale = min(800 / min(height, width), 1333 / max(height, width))
    new_h, new_w = math.floor(height * scale), math.floor(width * scale)
    resized = cv2.resize(rgb.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255
    normalised = (resized - mean) / std
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None]), (new_h, new_w)
